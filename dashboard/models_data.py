"""The Models page's data layer (issue 6): registered versions with their figures, training
runs, dataset versions, and promote / roll back, as plain records a test can check without
a browser.

Reads are for managers and reviewers; promoting and rolling back are for managers, and that
is checked here, not only by hiding buttons. Every read and action goes through the same
functions as `callsense models list|runs|promote|rollback` and `callsense data list`: the
promotion gate is `callsense.finetune.promotion.run_gate`, never a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from callsense.core.settings import Settings
from callsense.dashboard.data import AccessDenied, User
from callsense.finetune.datasets import DatasetStore
from callsense.finetune.promotion import GateDecision, run_gate
from callsense.finetune.registry import ModelRecord, ModelRegistry
from callsense.finetune.reports import gate_report, report_folder
from callsense.finetune.runs import list_runs
from callsense.finetune.workspace import Workspace

READER_ROLES = frozenset({"manager", "reviewer"})

# Figures the jobs record on the registry row, by the names they give them.
RECORDED_LABELS = {"test_macro_f1": "macro-F1", "test_accuracy": "accuracy", "dev_macro_f1": "dev macro-F1",
                   "test_intent_accuracy": "intent accuracy", "test_slot_f1": "slot F1", "test_wer": "WER"}
# Per-epoch entries: bookkeeping rather than something to plot.
EPOCH_BOOKKEEPING = frozenset({"epoch", "steps", "global_step", "partial", "best_epoch", "train_seconds", "score"})


@dataclass(frozen=True)
class Figure:
    """One measured figure, with its bootstrap interval when the evaluation gave one."""

    value: float
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, raw) -> "Figure | None":
        """`{"value", "low", "high"}` (an evaluation's interval) or a bare number."""
        if isinstance(raw, dict) and isinstance(raw.get("value"), (int, float)):
            return cls(float(raw["value"]), raw.get("low"), raw.get("high"))
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return cls(float(raw))
        return None

    def text(self, digits: int = 3) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class ConfusionMatrix:
    labels: list[str]
    counts: list[list[int]]  # rows: true label, columns: predicted label
    measured_on: str


@dataclass
class VersionInfo:
    name: str
    version: int
    status: str  # candidate | serving | archived
    format: str
    dataset_version: str
    run_id: str
    notes: str
    created_by: str
    created_at: float
    promoted_at: float | None
    figures: dict[str, Figure] = field(default_factory=dict)  # label -> figure, in display order
    measured_on: str = ""  # where the figures come from ("DATASET:test, N rows")
    confusion: ConfusionMatrix | None = None

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass
class Comparison:
    """Two versions' recorded figures side by side (each from its own test evaluation)."""

    candidate: VersionInfo
    serving: VersionInfo | None
    rows: list[tuple[str, Figure | None, Figure | None]]  # (figure, candidate's, serving's)

    @property
    def same_test_set(self) -> bool:
        return self.serving is not None and bool(self.candidate.measured_on) and \
            self.candidate.measured_on == self.serving.measured_on


@dataclass
class RunInfo:
    id: str
    job: str
    status: str
    dataset_version: str
    started_at: float
    wall_s: float
    epochs: list[dict]
    error: str | None = None


@dataclass
class DatasetInfo:
    id: str
    kind: str
    name: str
    counts: dict[str, int]  # split -> rows
    lineage_sources: dict[str, int]  # files | dashboard-review | dialog-archive -> rows
    lineage_who: dict[str, int]  # reviewer (or "(file)") -> rows
    created_by: str
    created_at: float


@dataclass
class Promotion:
    decision: GateDecision
    report: Path  # the gate report's Markdown file, as `callsense models promote` writes it


@dataclass
class Rollback:
    name: str
    from_version: int
    to_version: int


# ------------------------------------------------------------------------------- figures


def evaluation_figures(test: dict) -> dict[str, Figure]:
    """The figures of a run's test evaluation (sentiment, intent-slot or asr), labelled."""
    raw: dict[str, object] = {}
    if "macro_f1" in test:
        raw["macro-F1"], raw["accuracy"] = test["macro_f1"], test.get("accuracy")
        for label, per in (test.get("per_class") or {}).items():
            raw[f"{label} precision"], raw[f"{label} recall"], raw[f"{label} F1"] = (
                per.get("precision"), per.get("recall"), per.get("f1"))
    for key, label in (("intent_accuracy", "intent accuracy"), ("slot_f1", "slot F1"),
                       ("sentence_accuracy", "whole query right"), ("wer", "WER")):
        if key in test:
            raw[label] = test[key]
    return {label: fig for label, value in raw.items() if (fig := Figure.parse(value)) is not None}


def recorded_figures(metrics: dict) -> dict[str, Figure]:
    """The figures stored with a registry version (`metrics` of `models register`/the jobs)."""
    return {RECORDED_LABELS.get(key, key.replace("_", " ")): fig
            for key, value in metrics.items() if (fig := Figure.parse(value)) is not None}


def confusion_of(test: dict, measured_on: str) -> ConfusionMatrix | None:
    if test.get("confusion_matrix") and test.get("labels"):
        return ConfusionMatrix(list(test["labels"]), test["confusion_matrix"], measured_on)
    return None


def version_info(record: ModelRecord, run: dict | None) -> VersionInfo:
    """A registry version with the figures of its run's test evaluation, then its own."""
    test = ((run or {}).get("metrics") or {}).get("test") or {}
    measured_on = ""
    if test:
        measured_on = f"{run['dataset_version'] or '?'}:test, {test.get('n', '?')} rows"
    figures = evaluation_figures(test)
    for label, fig in recorded_figures(record.metrics).items():
        figures.setdefault(label, fig)
    return VersionInfo(name=record.name, version=record.version, status=record.status, format=record.format,
                       dataset_version=record.dataset_version, run_id=record.run_id, notes=record.notes,
                       created_by=record.created_by, created_at=record.created_at, promoted_at=record.promoted_at,
                       figures=figures, measured_on=measured_on, confusion=confusion_of(test, measured_on))


def compare(candidate: VersionInfo, serving: VersionInfo | None) -> Comparison:
    """`candidate`'s figures next to the serving version's, in the candidate's order."""
    labels = list(candidate.figures)
    labels += [label for label in (serving.figures if serving else {}) if label not in candidate.figures]
    return Comparison(candidate, serving, [(label, candidate.figures.get(label), serving.figures.get(label) if serving else None)
                                           for label in labels])


def epoch_series(epochs: list[dict]) -> list[dict]:
    """Per-epoch numbers in long form (epoch, metric, value), for a chart."""
    return [{"epoch": e["epoch"], "metric": key, "value": float(value)}
            for e in epochs if isinstance(e.get("epoch"), (int, float))
            for key, value in e.items()
            if key not in EPOCH_BOOKKEEPING and isinstance(value, (int, float)) and not isinstance(value, bool)]


# ----------------------------------------------------------------------------- the layer


class ModelsData:
    """What the Models page reads and does, for one signed-in user."""

    def __init__(self, settings: Settings, user: User, engine: Engine | None = None):
        self.settings = settings
        self.ws = Workspace(settings)
        if engine is not None:
            self.ws.engine = engine  # the dashboard's engine, instead of a second one to the same store
        self.user = user

    def _require_reader(self) -> None:
        if not self.user.roles & READER_ROLES:
            raise AccessDenied(f"{self.user.username} may not see models: the Models page is for managers and reviewers")

    def _require_manager(self, action: str) -> None:
        if not self.user.has("manager"):
            raise AccessDenied(f"{self.user.username} may not {action}: that needs the manager role")

    @property
    def may_deploy(self) -> bool:
        return self.user.has("manager")

    @property
    def workspace_root(self) -> Path:
        return self.ws.root

    # ---- reads ------------------------------------------------------------------------

    def started(self) -> bool:
        """Has the fine-tuning loop been used with this store (its folder exists, or a run is recorded)?"""
        self._require_reader()
        return self.ws.root.is_dir() or bool(list_runs(self.ws, None, 1))

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of `name`, oldest first (the shipped default is v1, as in `callsense models list`)."""
        self._require_reader()
        runs = {r["id"]: r for r in list_runs(self.ws, None, 1000)}
        return [version_info(rec, runs.get(rec.run_id)) for rec in ModelRegistry(self.ws).versions(name)]

    def runs(self, job: str | None = None, limit: int = 50) -> list[RunInfo]:
        """Training runs, newest first (`callsense models runs`)."""
        self._require_reader()
        return [RunInfo(id=r["id"], job=r["job"], status=r["status"], dataset_version=r["dataset_version"],
                        started_at=r["started_at"], wall_s=r["wall_s"], epochs=r["epochs"], error=r["error"])
                for r in list_runs(self.ws, job, limit)]

    def datasets(self, kind: str | None = None) -> list[DatasetInfo]:
        """Dataset versions with their split sizes and lineage counts, newest first (`callsense data list`)."""
        self._require_reader()
        out = []
        for v in reversed(DatasetStore(self.ws).list(kind)):
            m = v.manifest
            lineage = m.get("lineage") or {}
            out.append(DatasetInfo(id=v.id, kind=v.kind, name=v.name, counts=v.counts(),
                                   lineage_sources=dict(lineage.get("sources") or {}), lineage_who=dict(lineage.get("who") or {}),
                                   created_by=m.get("created_by", ""), created_at=m.get("created_at", 0.0)))
        return out

    def events(self, name: str, limit: int = 30) -> list[dict]:
        """Register / promote / refuse / rollback decisions, newest first."""
        self._require_reader()
        return ModelRegistry(self.ws).events(name, limit)

    # ---- deploy -----------------------------------------------------------------------

    def promote(self, name: str, version: int, holdout: str | None = None) -> Promotion:
        """The promotion gate of `callsense models promote NAME VERSION [--holdout ...]`:
        promotes only when the improvement's interval lies above the minimum; the decision
        and its reason are logged and written as a report either way."""
        self._require_manager("promote a model")
        decision = run_gate(self.ws, name, version, holdout=holdout or None, by=self.user.username)
        paths = gate_report(decision.as_dict(), report_folder(self.ws.reports_dir, f"gate-{name}-v{version}"))
        return Promotion(decision, paths["markdown"])

    def rollback(self, name: str) -> Rollback:
        """`callsense models rollback NAME`: the version that served before serves again."""
        self._require_manager("roll back a model")
        registry = ModelRegistry(self.ws)
        before = registry.serving(name)
        now = registry.rollback(name, by=self.user.username)
        return Rollback(name, before.version if before else now.version, now.version)

