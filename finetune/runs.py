"""Run records: every job run gets a folder ``runs/<run-id>/`` with ``run.json`` (config,
dataset version, code version, hardware, per-epoch metrics, final metrics, wall time,
artifacts) and a row in `training_runs`, updated as the run goes so that an interrupted run
can be seen and resumed."""

from __future__ import annotations

import json
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlmodel import Session

from callsense.finetune.workspace import FinetuneError, Workspace, code_version, hardware, utc_iso, write_json
from callsense.store.registry_tables import TrainingRun


class Progress(Protocol):
    """What a job reports while it works (the CLI draws rich progress bars; tests pass nothing)."""

    def start(self, description: str, total: int | None, completed: int = 0) -> None: ...

    def advance(self, n: int = 1, **fields) -> None: ...

    def note(self, message: str) -> None: ...


class SilentProgress:
    def start(self, description: str, total: int | None, completed: int = 0) -> None:
        pass

    def advance(self, n: int = 1, **fields) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class RunRecord:
    ws: Workspace
    id: str
    job: str
    config: dict
    dataset_version: str
    folder: Path
    started_at: float = field(default_factory=time.time)
    epochs: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    status: str = "running"
    resumed: list[str] = field(default_factory=list)
    wall_s_before: float = 0.0  # wall time of earlier attempts (a resumed run adds up)
    error: str | None = None  # why the run failed (None while it runs or once it is done)
    failures: list[dict] = field(default_factory=list)  # every failed attempt: when and why
    _t0: float = field(default_factory=time.perf_counter)

    # ---- creation --------------------------------------------------------------------

    @classmethod
    def create(cls, ws: Workspace, job: str, config: dict, dataset_version: str) -> "RunRecord":
        run_id = f"{job}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        folder = ws.runs_dir / run_id
        folder.mkdir(parents=True, exist_ok=False)
        rec = cls(ws, run_id, job, config, dataset_version, folder)
        rec.save()
        return rec

    @classmethod
    def resume(cls, ws: Workspace, run_ref: str, job: str, config_from_dict, threads: int | None = None,
               device: str | None = None):
        """An earlier run of `job` and its job configuration, to go on with. Where it runs may
        change between attempts (the results do not depend on it): `threads` and `device`
        override the recorded ones when given."""
        run = cls.load(ws, run_ref, job)
        config = config_from_dict(run.config)
        # The dataset version the run record names, by id: the name it was given may point to
        # a newer version by now (a rebuild), and a resumed run must go on with the same rows.
        if run.dataset_version and hasattr(config, "dataset"):
            config.dataset = run.dataset_version
        config.train.threads = threads or config.train.threads
        config.train.device = device or config.train.device
        return run, config

    @staticmethod
    def resumable(ws: Workspace, data: dict) -> str | None:
        """Why a run cannot be resumed (None: it can): it finished, or the dataset version its
        record names is gone."""
        if data.get("status") == "done":
            return "finished"
        ref = data.get("dataset_version")
        if not ref or not (ws.datasets_dir / ref / "manifest.json").is_file():
            return f"its dataset version {ref or '(none)'} is gone"
        return None

    @staticmethod
    def has_checkpoint(folder: Path) -> bool:
        return (folder / "checkpoint.pt").is_file() or (folder / "checkpoints" / "last.ckpt").is_file()

    @classmethod
    def last_resumable(cls, ws: Workspace, job: str) -> Path:
        """`--resume last`: the newest (by start time) unfinished run of `job` whose dataset
        version is still there; one with a checkpoint before one without (which would start over)."""
        runs = []
        for p in ws.runs_dir.glob(f"{job}-*"):
            try:
                data = json.loads((p / "run.json").read_text())
            except (OSError, ValueError):
                continue
            if data.get("job") == job:
                runs.append((p, data))
        ok = [(p, d) for p, d in runs if cls.resumable(ws, d) is None]
        if not ok:
            skipped = [f"{d['id']} ({cls.resumable(ws, d)})" for p, d in runs if d.get("status") != "done"][:3]
            raise FinetuneError(f"no resumable {job} run in {ws.runs_dir}" + (f"; not resumable: {', '.join(skipped)}" if skipped else ""))
        ok.sort(key=lambda pd: (cls.has_checkpoint(pd[0]), pd[1].get("started_at", 0.0), pd[0].name))
        return ok[-1][0]

    @classmethod
    def load(cls, ws: Workspace, run_ref: str, job: str) -> "RunRecord":
        """An earlier run of `job` to resume: by id, or `last` (the newest unfinished one)."""
        if run_ref == "last":
            folder = cls.last_resumable(ws, job)
        else:
            folder = ws.runs_dir / run_ref
        if not (folder / "run.json").is_file():
            raise FinetuneError(f"no run '{run_ref}' in {ws.runs_dir}")
        data = json.loads((folder / "run.json").read_text())
        if data["job"] != job:
            raise FinetuneError(f"run {data['id']} is a {data['job']} run, not {job}")
        if data["status"] == "done":
            raise FinetuneError(f"run {data['id']} already finished; start a new run instead")
        rec = cls(ws, data["id"], job, data["config"], data["dataset_version"], folder, started_at=data["started_at"],
                  epochs=data.get("epochs", []), metrics=data.get("metrics", {}), artifacts=data.get("artifacts", {}),
                  resumed=data.get("resumed", []) + [utc_iso()], wall_s_before=data.get("wall_s", 0.0),
                  failures=data.get("failures", []))
        rec.save()
        return rec

    # ---- updates ---------------------------------------------------------------------

    @property
    def wall_s(self) -> float:
        return self.wall_s_before + (time.perf_counter() - self._t0)

    def add_epoch(self, entry: dict) -> None:
        self.epochs = [e for e in self.epochs if e.get("epoch") != entry.get("epoch")] + [entry]
        self.save()

    def finish(self, metrics: dict, artifacts: dict) -> None:
        self.metrics, self.artifacts, self.status, self.error = metrics, artifacts, "done", None
        self.save(finished=True)

    def fail(self, error: str) -> None:
        self.status, self.error = "failed", error
        self.failures.append({"at": utc_iso(), "error": error})
        self.save()

    @contextmanager
    def recording(self):
        """Whatever ends the block early (an error, Ctrl+C, SIGTERM turned into
        KeyboardInterrupt) marks the run failed with the reason, then goes on up."""
        try:
            yield self
        except BaseException as e:
            reason = f"{type(e).__name__}: {e}" if str(e) else ("interrupted" if isinstance(e, KeyboardInterrupt) else type(e).__name__)
            if self.status != "done":
                self.fail(reason)
            raise

    def as_dict(self) -> dict:
        return {"id": self.id, "job": self.job, "status": self.status, "config": self.config,
                "dataset_version": self.dataset_version, "code_version": code_version(), "hardware": hardware(),
                "started_at": self.started_at, "started_at_utc": utc_iso(self.started_at), "resumed": self.resumed,
                "epochs": self.epochs, "metrics": self.metrics, "artifacts": self.artifacts, "wall_s": round(self.wall_s, 3),
                "folder": str(self.folder), "error": self.error, "failures": self.failures}

    def save(self, finished: bool = False, error: str | None = None) -> None:
        if error:
            self.error = error
        data = self.as_dict()
        write_json(self.folder / "run.json", data)
        with Session(self.ws.engine) as s:
            row = s.get(TrainingRun, self.id) or TrainingRun(id=self.id, job=self.job)
            row.status, row.dataset_version, row.code_version = self.status, self.dataset_version, data["code_version"]
            row.config_json = json.dumps(self.config, default=str)
            row.hardware_json = json.dumps(data["hardware"])
            row.epochs_json = json.dumps(self.epochs, default=str)
            row.metrics_json = json.dumps(self.metrics, default=str)
            row.folder, row.wall_s, row.started_at = str(self.folder), data["wall_s"], self.started_at
            row.finished_at = time.time() if finished else None
            row.error = self.error
            s.add(row)
            s.commit()


def list_runs(ws: Workspace, job: str | None = None, limit: int = 50) -> list[dict]:
    with Session(ws.engine) as s:
        q = select(TrainingRun).order_by(TrainingRun.started_at.desc()).limit(limit)
        if job:
            q = q.where(TrainingRun.job == job)
        return [{"id": r.id, "job": r.job, "status": r.status, "dataset_version": r.dataset_version, "code_version": r.code_version,
                 "wall_s": r.wall_s, "started_at": r.started_at, "metrics": json.loads(r.metrics_json or "{}"),
                 "epochs": json.loads(r.epochs_json or "[]"), "config": json.loads(r.config_json or "{}"), "folder": r.folder,
                 "error": r.error} for r in s.exec(q).scalars()]
