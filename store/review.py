"""Tables of the manager dashboard (issue 4): its users, the label reviews that become
fine-tuning data, where a call's original audio is, and the indexes its queries need.

Reviews are append-only: each accept or correction is a new row with who and when, and
the latest row for a sentence holds its final label (`callsense.dashboard.data.labelled_sentences`).
Rows name their sentence by the pipeline's natural key (call, channel, utterance, index),
which stays the same when the pipeline rewrites the sentence.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Index
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from callsense.store.schema import Call, Sentence

ROLES = ("manager", "agent", "reviewer")
REVIEW_ACTIONS = ("accepted", "corrected")


class DashboardUser(SQLModel, table=True):
    """A person who may sign in to the dashboard (`callsense dashboard add-user`)."""

    __tablename__ = "dashboard_users"
    username: str = Field(primary_key=True)
    name: str = ""
    password_hash: str  # bcrypt
    roles: str = ""  # comma separated, from ROLES
    agent_id: str | None = None  # the agent id in calls, for the `agent` role
    disabled: bool = False
    created_at: float = 0.0


class LabelReview(SQLModel, table=True):
    """One reviewer's verdict on one sentence's sentiment (and transcript)."""

    __tablename__ = "label_reviews"
    __table_args__ = (
        Index("ix_label_reviews_sentence", "call_id", "channel", "utterance_idx", "idx"),
        Index("ix_label_reviews_at", "reviewed_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str
    channel: int
    utterance_idx: int
    idx: int
    sentence_id: int | None = None  # sentences.id at review time (informative)
    speaker: str = ""
    agent_id: str | None = None
    original_text: str
    original_sentiment: str
    original_confidence: float
    sentiment_model: str = ""
    text: str  # final transcript
    sentiment: str  # final label
    action: str  # accepted | corrected
    reviewer: str
    reviewed_at: float


class CallAudio(SQLModel, table=True):
    """Where a call's original recording is, when the pipeline did not keep a reference:
    `callsense dashboard attach-audio CALL_ID FILE` copies the file into the blob store."""

    __tablename__ = "call_audio"
    call_id: str = Field(primary_key=True)
    blob: str  # sha256 name in the claim-check blob store
    source_name: str = ""
    n_bytes: int = 0
    attached_by: str = ""
    attached_at: float = 0.0


# Indexes the dashboard's queries need on the pipeline's tables. create_all()
# makes them with a new table; ensure_dashboard_indexes() adds them to an existing one.
DASHBOARD_INDEXES = (
    # Agent history and team comparison: queries name the agent(s), speakers and labels
    # (IN lists), so each is a few index-only range seeks with no sort for the GROUP BY.
    Index("ix_sentences_agent_mix", Sentence.agent_id, Sentence.speaker, Sentence.sentiment,
          Sentence.call_started_at, Sentence.call_id),
    # Review queue: lowest confidence first.
    Index("ix_sentences_confidence", Sentence.confidence),
    # Calls per agent and period (agent history, team comparison), index-only.
    Index("ix_calls_agent_started", Call.agent_id, Call.started_at),
)


def ensure_dashboard_indexes(engine: Engine) -> None:
    """Create the dashboard's indexes on a store made before they existed (idempotent)."""
    for index in DASHBOARD_INDEXES:
        index.create(engine, checkfirst=True)
