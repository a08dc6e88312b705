"""The one template the fine-tuning jobs (`sentiment`, `intent-slot`, `asr`) share:

- a **config model** per job: a pydantic model (`JobConfig` subclass) holding every option
  that shapes the result, with the training options (`TrainOptions`) nested under `train`.
  It is validated when it is built and when a field is assigned; an invalid value (e.g.
  `--epochs 0`, which would register an untrained model) is refused with `InvalidJobConfig`,
  a `FinetuneError` that names the option. The run record keeps the config (`as_dict`) and
  `--resume` rebuilds it from there (`from_dict`).
- the **run record** (`callsense.finetune.runs.RunRecord`): created once the dataset and the
  starting point have been checked, updated per epoch, finished with metrics and artifacts.
- **failure handling**: whatever stops a run after its record exists (an error, Ctrl+C,
  SIGTERM) marks it `failed` with the reason (`RunRecord.recording`), so it can be seen
  and resumed; a run that took no training step never exports or registers a model.

A job subclasses `Job`: `requirements()` (the extra it needs), `prepare()` (checks before the
run exists; returns what the run record should add to the config, e.g. the resolved
starting point) and `execute()` (train, export, score, register; returns metrics and
artifacts). `Job.run()` is the template; `run_sentiment_job` & co. are thin wrappers.
"""

from __future__ import annotations

import shlex
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from callsense.finetune.datasets import DatasetStore, DatasetVersion
from callsense.finetune.runs import Progress, RunRecord, SilentProgress
from callsense.finetune.workspace import FinetuneError, Workspace


class InvalidJobConfig(FinetuneError):
    """A job option out of range or of the wrong kind; the message names it."""


def describe_errors(e: ValidationError, what: str) -> str:
    parts = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or what
        got = err.get("input")
        parts.append(f"{where}: {err['msg'].rstrip('.')}" + ("" if isinstance(got, dict) or got is None else f" (got {got!r})"))
    text = f"invalid {what}: " + "; ".join(parts)
    if any(err["loc"] and err["loc"][-1] == "epochs" for err in e.errors()):
        text += " - a run trains at least one epoch (an untrained model is never exported or registered)"
    return text


class Options(BaseModel):
    """A validated set of options: built from keywords (or a dict), checked again when a
    field is assigned, refused with `InvalidJobConfig` (never a half-valid object)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)
    _what: ClassVar[str] = "options"

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise InvalidJobConfig(describe_errors(e, self._what)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as e:
            raise InvalidJobConfig(describe_errors(e, self._what)) from None

    def as_dict(self) -> dict:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict):
        """From a run record's config: entries the model does not know (e.g. `init_resolved`)
        are the record's, not options."""
        known = set(cls.model_fields)
        for f in cls.model_fields.values():
            if isinstance(f.validation_alias, AliasChoices):
                known |= {c for c in f.validation_alias.choices if isinstance(c, str)}
        return cls(**{k: v for k, v in d.items() if k in known})


class TrainOptions(Options):
    """The training loop's options (`callsense.finetune.jobs.trainer.Trainer`; the ASR job
    hands epochs, batch size, lr, weight decay, seed and max steps to Lightning)."""

    _what: ClassVar[str] = "training options"

    epochs: int = Field(3, ge=1, description="training epochs")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0, description="peak AdamW learning rate (the encoder's when head_lr is set)")
    head_lr: float | None = Field(None, gt=0, description="peak learning rate of the task heads (None: lr)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="linear warm-up over this share of the steps, then linear decay")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (none on biases, LayerNorm and heads with head_lr)")
    seed: int = Field(13, description="seeds the heads' initialisation, dropout and the batch order")
    select_epoch: Literal["best", "last"] = Field("best", description="export the epoch with the best dev score, or the last")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (smoke tests)")
    checkpoint_every: int = Field(100, ge=0, description="steps between checkpoints (0: only at epoch ends)")
    threads: int = Field(2, ge=1)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


ConfigT = TypeVar("ConfigT", bound="JobConfig")


class JobConfig(Options):
    """What every job has: the dataset version, the registry name, whether to register the
    result as a candidate, and the training options."""

    job: ClassVar[str] = ""

    dataset: str = Field(min_length=1, description="dataset version (id, unique prefix or name)")
    name: str = Field(min_length=1, description="registry name")
    register_candidate: bool = Field(True, validation_alias=AliasChoices("register_candidate", "register"))
    train: TrainOptions = Field(default_factory=TrainOptions)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("job"):
            cls._what = f"{cls.job} job configuration"

    # Where a run happens, not what it builds: left out of the recorded command.
    _cli_skip: ClassVar[frozenset[str]] = frozenset({"threads", "device", "checkpoint_every"})

    def cli_args(self) -> list[str]:
        """The options of `callsense finetune JOB` that give this configuration (the CLI's
        option names are the field names with dashes; `register_candidate` is --register)."""
        values = self.model_dump()
        train = values.pop("train")
        args: list[str] = []
        for key, value in [*values.items(), *train.items()]:
            if key in self._cli_skip or value is None:
                continue
            flag = "register" if key == "register_candidate" else key.replace("_", "-")
            if isinstance(value, bool):
                args.append(f"--{flag}" if value else f"--no-{flag}")
            else:
                args += [f"--{flag}", str(value)]
        return args

    def command(self) -> str:
        return shlex.join(["callsense", "finetune", self.job, *self.cli_args()])

    @classmethod
    def checked(cls: type[ConfigT], config) -> ConfigT:
        """`config` validated as this job's configuration (a config of another job is refused)."""
        if not isinstance(config, cls):
            raise FinetuneError(f"a {cls.job} job needs a {cls.__name__}, not {type(config).__name__}")
        return cls(**config.model_dump())


class OnnxJobConfig(JobConfig):
    """The transformers jobs, whose result is an int8 ONNX folder."""

    init: str = Field("encoder", min_length=1, description="encoder (the packaged all-MiniLM-L6-v2) or a checkpoint folder")
    max_length: int = Field(ge=8, le=512, description="max sub-word tokens per input")
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout before the head(s)")
    per_channel: bool = Field(False, description="int8 weight scales per output channel instead of per tensor")
    keep_checkpoint: bool = Field(True, description="keep the torch checkpoint (model/checkpoint/) for --init")
    out: str | None = Field(None, description="also write the model folder here (e.g. the shipped model's folder)")
    model_name: str | None = Field(None, description="name in the manifest (default: the --out folder's name, "
                                                    "else <name>-<run id>)")

    def manifest_name(self, run_id: str) -> str:
        if self.model_name:
            return self.model_name
        if self.out:
            return Path(self.out).name
        return f"{self.name}-{run_id}"


@dataclass
class JobContext(Generic[ConfigT]):
    ws: Workspace
    config: ConfigT
    dataset: DatasetVersion
    run: RunRecord
    progress: Progress
    resumed: bool
    prepared: dict = field(default_factory=dict)


@dataclass
class JobResult:
    metrics: dict
    artifacts: dict


class Job(ABC, Generic[ConfigT]):
    name: ClassVar[str]  # run ids and run records: sentiment, intent-slot, asr
    dataset_kind: ClassVar[str]
    config_type: ClassVar[type[JobConfig]]

    def requirements(self) -> None:
        """Raise FinetuneError when the extra this job needs is missing."""

    def prepare(self, ws: Workspace, config: ConfigT, dataset: DatasetVersion) -> dict:
        """Checks before the run record exists (a refused start leaves no run behind).
        Returns entries the run record keeps with the config (e.g. `init_resolved`)."""
        return {}

    @abstractmethod
    def execute(self, ctx: JobContext[ConfigT]) -> JobResult:
        """Train, export, score and register; the run record is finished by the template."""

    def run(self, ws: Workspace, config: ConfigT | None = None, *, resume: str | None = None,
            progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
        """The template: a new run from `config`, or `resume` (RUN_ID or `last`) an unfinished
        one with its recorded config (`threads`/`device` may change). Returns the run record."""
        progress = progress or SilentProgress()
        self.requirements()
        if resume:
            run, config = RunRecord.resume(ws, resume, self.name, self.config_type.from_dict, threads, device)
            with run.recording():
                dataset = self._dataset(ws, config)
                prepared = self.prepare(ws, config, dataset)
                return self._execute(ws, config, dataset, run, progress, True, prepared)
        if config is None:
            raise FinetuneError("give a job configuration or --resume RUN")
        config = self.config_type.checked(config)
        dataset = self._dataset(ws, config)
        prepared = self.prepare(ws, config, dataset)
        run = RunRecord.create(ws, self.name, dict(config.as_dict(), **prepared), dataset.id)
        with run.recording():
            return self._execute(ws, config, dataset, run, progress, False, prepared)

    def _dataset(self, ws: Workspace, config: JobConfig) -> DatasetVersion:
        dataset = DatasetStore(ws).get(config.dataset)
        if dataset.kind != self.dataset_kind:
            raise FinetuneError(f"dataset {dataset.id} is a {dataset.kind} dataset, not {self.dataset_kind}")
        if not dataset.rows("train"):
            raise FinetuneError(f"dataset {dataset.id} has no train rows")
        return dataset

    def _execute(self, ws, config, dataset, run, progress, resumed, prepared) -> dict:
        result = self.execute(JobContext(ws, config, dataset, run, progress, resumed, prepared))
        run.finish(result.metrics, result.artifacts)
        return run.as_dict()


# ------------------------------------------------------------------------------ shared steps


def register_candidate(ctx: JobContext, folder: Path, *, format: str, model_id: str = "", metrics: dict, notes: str) -> str:
    """Register `folder` as a candidate version of the config's name; returns `NAME vN`."""
    from callsense.finetune.registry import ModelRegistry

    rec = ModelRegistry(ctx.ws).register(ctx.config.name, folder, format=format, model_id=model_id,
                                         dataset_version=ctx.dataset.id, run_id=ctx.run.id, metrics=metrics, notes=notes)
    return f"{rec.name} v{rec.version}"


def ship_model_folder(model_dir: Path, out: Path, skip: tuple[str, ...] = ("checkpoint",)) -> Path:
    """Copy an exported model folder (without its torch checkpoint) to `out`, e.g. the shipped
    model's folder. Files of the same name are replaced; others (a README) stay."""
    out = Path(out).expanduser()
    if out.resolve() == Path(model_dir).resolve():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted(Path(model_dir).iterdir()):
        if src.name in skip:
            continue
        dst = out / src.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        elif dst.exists() or dst.is_symlink():
            dst.unlink()
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
    return out
