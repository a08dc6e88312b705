"""The honest evaluation loop (issue 14): the gate checks the serving model's lineage too,
unknown splits are errors, versions are addressed per model name, `--resume last` keeps the
run's dataset version, `models register` wants a checked manifest, `eval asr` records its
systems, and `finetune asr-init` makes a first .nemo. Real files, the shipped models, slices
of the shared data."""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from callsense.finetune.datasets import DatasetStore
from callsense.finetune.promotion import run_gate
from callsense.finetune.registry import ModelRegistry
from callsense.finetune.runs import RunRecord
from callsense.finetune.workspace import FinetuneError

from finetune_helpers import degrade_sentiment_model, shipped_sentiment_dir, write_meld_slice, write_seq_slice


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def cli(workspace, monkeypatch):
    from callsense.cli import app

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("CALLSENSE_BOOTSTRAP_SAMPLES", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(map(str, args)))


def test_the_gate_refuses_a_holdout_the_serving_model_was_trained_on(workspace, meld_dir, tmp_path):
    store = DatasetStore(workspace)
    from_train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train-slice.csv", 8)
    holdout = store.build("sentiment", [f"meld:{from_train}@test"], name="cut-from-train").version
    reg = ModelRegistry(workspace)
    cand = reg.register("sentiment", degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "c"), format="onnx-sentiment")
    d = run_gate(workspace, "sentiment", cand.version, holdout=f"{holdout.id}:test")
    assert not d.promoted and d.delta is None and d.reason.startswith("refused:"), d.reason
    n = len(holdout.rows("test"))
    assert f"{n} of {n} holdout texts are in what the serving sentiment v1 was trained on (train.csv" in d.reason
    assert "e.g. '" in d.reason and "callsense data build" in d.reason, "examples and how to build a clean holdout"
    assert not any("MELD dev" in note for note in d.notes)
    assert reg.serving("sentiment").version == 1


def test_a_dev_holdout_is_compared_with_a_note_naming_dev(workspace, meld_dir, tmp_path):
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 6)
    holdout = DatasetStore(workspace).build("sentiment", [f"meld:{dev}@test"]).version
    reg = ModelRegistry(workspace)
    cand = reg.register("sentiment", degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "c"), format="onnx-sentiment")
    d = run_gate(workspace, "sentiment", cand.version, holdout=f"{holdout.id}:test")
    assert d.delta is not None and not d.promoted, d.reason
    assert any("tuned on (dev.csv" in n for n in d.notes), d.notes


def test_eval_warns_about_the_models_lineage(workspace, meld_dir, tmp_path, cli):
    from_train = write_meld_slice(meld_dir / "train.csv", tmp_path / "t.csv", 3)
    res = cli("eval", "sentiment", from_train, "--report", tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "was trained on (train.csv" in flat(res.output) and "callsense data build" in flat(res.output)


def test_an_unknown_or_empty_split_is_an_error(workspace, meld_dir, tmp_path, cli):
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 4)
    ds = DatasetStore(workspace).build("sentiment", [f"meld:{dev}@test"], name="small").version
    res = cli("eval", "sentiment", f"{ds.id}:tset")
    assert res.exit_code == 1 and "Traceback" not in res.output
    line = flat(res.output)
    assert f"has no split 'tset'" in line and "test (" in line and "0.000" not in line
    res = cli("eval", "sentiment", "small:train")  # the split exists but is empty
    assert res.exit_code == 1 and "has no rows in split 'train'" in flat(res.output)
    res = cli("models", "promote", "sentiment", "1", "--holdout", f"{ds.id}:tset")
    assert res.exit_code == 1 or "already serves" in flat(res.output)


def test_versions_are_addressed_per_model_name(workspace, snips_dir, tmp_path, cli):
    from callsense.nlp.intent_slot.model import DEFAULT_MODEL_DIR

    reg = ModelRegistry(workspace)
    reg.ensure_builtin("intent-slot")
    other = reg.register("snips-nlu", DEFAULT_MODEL_DIR, format="onnx-intent-slot", notes="trained under another name")
    assert other.version == 1 and other.kind == "intent-slot"
    d = run_gate(workspace, "snips-nlu", 1)
    assert d.promoted and "nothing serves snips-nlu" in d.reason, d.reason
    assert reg.serving("snips-nlu").version == 1 and reg.serving("intent-slot").version == 1

    data = write_seq_slice(snips_dir / "dev", tmp_path / "seq", 20)
    res = cli("eval", "intent", data, "--version", "1")
    assert res.exit_code == 1 and "ambiguous" in flat(res.output) and "--name snips-nlu" in flat(res.output), res.output
    res = cli("eval", "intent", data, "--version", "1", "--name", "snips-nlu", "--report", tmp_path / "r")
    assert res.exit_code == 0, res.output
    res = cli("eval", "sentiment", data, "--name", "snips-nlu")
    assert res.exit_code == 1
    with pytest.raises(FinetuneError, match="holds intent-slot models"):
        reg.resolve("sentiment", "snips-nlu", None)


def _run(ws, job, name, status, dataset, started, checkpoint=False):
    folder = ws.runs_dir / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"id": name, "job": job, "status": status, "dataset_version": dataset,
                                                 "config": {"dataset": "by-name"}, "started_at": started}))
    if checkpoint:
        (folder / "checkpoint.pt").write_bytes(b"x")
    return folder


def test_resume_last_takes_the_last_resumable_run_with_its_dataset_version(workspace, meld_dir, tmp_path):
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 4)
    ds = DatasetStore(workspace).build("sentiment", [f"meld:{dev}"], name="by-name").version
    now = time.time()
    good = _run(workspace, "sentiment", "sentiment-20200101-000000-aaaaaa", "failed", ds.id, now - 300, checkpoint=True)
    _run(workspace, "sentiment", "sentiment-20200101-000001-bbbbbb", "failed", "0123456789abcdef", now - 100, checkpoint=True)
    _run(workspace, "sentiment", "sentiment-20200101-000002-cccccc", "done", ds.id, now - 50)
    # a rebuild: the name now points to another version
    DatasetStore(workspace).build("sentiment", [f"meld:{write_meld_slice(meld_dir / 'dev.csv', tmp_path / 'd2.csv', 5)}"], name="by-name")
    assert RunRecord.last_resumable(workspace, "sentiment") == good

    def config_from_dict(d):
        return SimpleNamespace(dataset=d["dataset"], train=SimpleNamespace(threads=1, device="cpu"))

    run, config = RunRecord.resume(workspace, "last", "sentiment", config_from_dict)
    assert run.id == good.name and config.dataset == ds.id, "the run record's dataset version, not the name's newest"
    with pytest.raises(FinetuneError, match="no resumable intent-slot run"):
        RunRecord.load(workspace, "last", "intent-slot")


def test_models_register_wants_a_manifest_that_matches_the_model(workspace, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "whatever.txt").write_text("not a model")
    res = cli("models", "register", "sentiment", empty)
    assert res.exit_code == 1 and "no manifest.json" in flat(res.output)
    tampered = tmp_path / "tampered"
    shutil.copytree(shipped_sentiment_dir(), tampered)
    (tampered / "model.onnx").chmod(0o644)
    with open(tampered / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    res = cli("models", "register", "sentiment", tampered)
    assert res.exit_code == 1 and "differs from its manifest" in flat(res.output)
    assert [v.version for v in ModelRegistry(workspace).versions("sentiment")] == [1]
    res = cli("models", "register", "sentiment", shipped_sentiment_dir())
    assert res.exit_code == 0 and "sentiment v2 (candidate)" in flat(res.output), res.output
    res = cli("models", "register", "my-sentiment", shipped_sentiment_dir())
    assert res.exit_code == 1 and "--kind" in flat(res.output)
    res = cli("models", "register", "my-sentiment", shipped_sentiment_dir(), "--kind", "sentiment")
    assert res.exit_code == 0, res.output


def test_eval_asr_records_the_engines_and_boosted_words(workspace, audio_manifest, tmp_path, cli):
    one = tmp_path / "one.jsonl"
    first = json.loads(audio_manifest.read_text().splitlines()[0])
    first["audio"] = str(audio_manifest.parent / first["audio"])
    one.write_text(json.dumps(first) + "\n")
    res = cli("eval", "asr", one, "-e", "whisper", "-e", "whisper+boost", "--boost", "stripe", "--report", tmp_path / "r")
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["command"].endswith("-e whisper -e whisper+boost --boost stripe")
    assert result["engines"] == ["whisper", "whisper+boost"] and result["boosted_words"] == ["stripe"]
    assert "--boost stripe" in (tmp_path / "r" / "report.md").read_text()


def test_finetune_asr_init_writes_a_first_nemo_checkpoint(tmp_path, cli):
    res = cli("finetune", "asr-init", "--out", tmp_path / "model.txt")
    assert res.exit_code == 1 and ".nemo" in flat(res.output)
    res = cli("finetune", "asr-init", "--out", tmp_path / "m" / "model.nemo")
    if res.exit_code == 1 and "needs NeMo" in flat(res.output):
        pytest.skip("the nemo extra is not installed")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "model.nemo").stat().st_size > 10_000 and "finetune asr --dataset" in flat(res.output)
