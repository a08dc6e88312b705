"""Tables of the fine-tuning loop (issue 6): dataset versions, training runs, the model
registry and its event log.

The files are the truth (an immutable dataset folder, a run folder, a model's artifact
folder); these rows index them so that the CLI, the dashboard's Models page and every
worker can ask "which version serves?" with one query.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

MODEL_STATUSES = ("candidate", "serving", "archived")


class DatasetVersionRecord(SQLModel, table=True):
    """One immutable, content-addressed dataset version (its folder holds the rows)."""

    __tablename__ = "dataset_versions"
    id: str = Field(primary_key=True, max_length=64)  # content hash (short)
    kind: str = Field(index=True)  # sentiment | intent-slot | asr
    name: str = ""
    path: str  # the version's folder
    rows: int = 0
    splits_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    sources_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    created_by: str = ""
    created_at: float = 0.0


class TrainingRun(SQLModel, table=True):
    """One fine-tuning job run: what it was given, where it ran, what it measured."""

    __tablename__ = "training_runs"
    id: str = Field(primary_key=True, max_length=64)
    job: str = Field(index=True)  # sentiment | intent-slot | asr
    status: str = "running"  # running | done | failed
    dataset_version: str = ""
    code_version: str = ""
    config_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    hardware_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    epochs_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    folder: str = ""
    wall_s: float = 0.0
    started_at: float = Field(default=0.0, index=True)
    finished_at: float | None = None
    error: str | None = None


class ModelVersion(SQLModel, table=True):
    """A registered model: at most one version per name is `serving` at a time."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_version"),
        Index("ix_model_versions_name_status", "name", "status"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str  # sentiment | intent-slot | asr | ...
    version: int
    status: str = "candidate"  # candidate | serving | archived
    format: str = ""  # onnx-sentiment | onnx-intent-slot | nemo | ...
    artifact_dir: str
    model_id: str = ""  # what the runtime reports (name@sha)
    dataset_version: str = ""
    run_id: str = ""
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    notes: str = ""
    created_by: str = ""
    created_at: float = 0.0
    promoted_at: float | None = None


class ModelEvent(SQLModel, table=True):
    """Append-only log: register, promote, refuse, rollback, with who, when and why."""

    __tablename__ = "model_events"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int
    action: str  # register | promote | refuse | rollback | archive
    by: str = ""
    at: float = 0.0
    detail_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
