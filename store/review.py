"""Tables of the manager dashboard (issue 4): its users, the label reviews that become
fine-tuning data, where a call's original audio is, and the indexes its queries need.

Reviews are append-only: each accept or correction is a new row with who and when, and
the latest row for a sentence holds its final label (`labelled_sentences`).
Rows name their sentence by the pipeline's natural key (call, channel, utterance, index),
which stays the same when the pipeline rewrites the sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import Index, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel

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


class CallNote(SQLModel, table=True):
    """A manager's note to the agent during a call (the Live page's "Send a note to the
    agent"), shown on the agent's screen and kept with the call. Append-only; plain text,
    at most `NOTE_MAX_CHARS` characters (checked by `DashboardData.add_note`)."""

    __tablename__ = "call_notes"
    __table_args__ = (Index("ix_call_notes_call_created", "call_id", "created_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str
    author: str  # the manager's user name
    agent_id: str | None = None  # the call's agent when the note was written
    text: str
    created_at: float


NOTE_MAX_CHARS = 1000


# Indexes the dashboard's queries need on the pipeline's tables (declared here, made by the
# schema's migrations in store/migrations at start-up like every table).
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


@dataclass(frozen=True)
class LabelledSentence:
    """A reviewed sentence with its final label: one training example."""

    call_id: str
    channel: int
    utterance_idx: int
    idx: int
    speaker: str
    text: str
    label: str
    original_text: str
    original_label: str
    original_confidence: float
    sentiment_model: str
    action: str  # accepted | corrected
    reviewer: str
    reviewed_at: float


def labelled_sentences(engine: Engine, *, since: float | None = None, corrected_only: bool = False,
                       speaker: str | None = None) -> list[LabelledSentence]:
    """Reviewed sentences with their final label and text (the latest review of each wins),
    oldest review first: the labelled data the fine-tuning jobs train and evaluate on."""
    latest = (select(func.max(LabelReview.id))
              .group_by(LabelReview.call_id, LabelReview.channel, LabelReview.utterance_idx, LabelReview.idx))
    q = select(LabelReview).where(LabelReview.id.in_(latest)).order_by(LabelReview.reviewed_at, LabelReview.id)
    if since is not None:
        q = q.where(LabelReview.reviewed_at >= since)
    if corrected_only:
        q = q.where(LabelReview.action == "corrected")
    if speaker:
        q = q.where(LabelReview.speaker == speaker)
    with Session(engine) as s:
        rows = list(s.exec(q).scalars())
    return [LabelledSentence(call_id=r.call_id, channel=r.channel, utterance_idx=r.utterance_idx, idx=r.idx,
                             speaker=r.speaker, text=r.text, label=r.sentiment, original_text=r.original_text,
                             original_label=r.original_sentiment, original_confidence=r.original_confidence,
                             sentiment_model=r.sentiment_model, action=r.action, reviewer=r.reviewer,
                             reviewed_at=r.reviewed_at) for r in rows]
