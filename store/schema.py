"""SQLModel tables. Natural keys make every write idempotent: a redelivered event
rewrites the same row instead of adding one."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    id: str = Field(primary_key=True)
    name: str | None = None


class Call(SQLModel, table=True):
    __tablename__ = "calls"
    id: str = Field(primary_key=True)
    source_name: str = ""
    mode: str = "recorded"  # recorded | live
    status: str = "processing"  # processing | done | failed
    agent_id: str | None = Field(default=None, index=True)
    channels: int = 1
    speakers: str = ""  # comma separated role per channel
    started_at: float = Field(default=0.0, index=True)
    duration_s: float | None = None
    utterances_expected: int | None = None
    finished_at: float | None = None
    error: str | None = None
    audio_blob: str | None = None  # sha256 name of the recording in the blob store
    # What was done to the recording's PII (pipeline.pii_audio): None = nothing (yet), `silenced` /
    # `toned` = audio_blob is the redacted recording, `nothing-found` = no PII spans to silence.
    audio_redaction: str | None = None


class Utterance(SQLModel, table=True):
    __tablename__ = "utterances"
    __table_args__ = (UniqueConstraint("call_id", "channel", "idx", name="uq_utterance"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str = Field(index=True)
    channel: int
    idx: int
    speaker: str
    start: float
    end: float
    text: str
    asr_confidence: float | None = None
    asr_model: str = ""
    stored_at: float = 0.0
    # Where redacted PII was said, JSON [[kind, start, end], ...] in call time: what the
    # recording's redaction silences (times and kinds only, never the text).
    pii_spans: str | None = None


class Sentence(SQLModel, table=True):
    __tablename__ = "sentences"
    __table_args__ = (
        UniqueConstraint("call_id", "channel", "utterance_idx", "idx", name="uq_sentence"),
        # The agent history page aggregates by agent over time.
        Index("ix_sentences_agent_time", "agent_id", "call_started_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str = Field(index=True)
    channel: int
    utterance_idx: int
    idx: int
    speaker: str
    agent_id: str | None = None
    call_started_at: float = 0.0
    start: float
    end: float
    text: str
    sentiment: str
    confidence: float
    sentiment_model: str = ""
    asr_model: str = ""
    # Live calls: wall-clock time the sentence ended in the call, to measure latency.
    ended_at: float | None = None
    stored_at: float = 0.0
    # RMS level of the sentence's audio (dBFS), where the audio was at hand when it was transcribed.
    loudness_dbfs: float | None = None


class ClearAudioBlob(SQLModel, table=True):
    """A blob that holds a call's audio in clear and must go once the call is done: the original
    recording replaced by its redacted copy, an utterance window whose words held PII. The store
    stage withdraws it and deletes the row; a row left by a crash is done at the next start."""

    __tablename__ = "clear_audio_blobs"
    __table_args__ = (UniqueConstraint("call_id", "blob", name="uq_clear_audio_blob"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str = Field(index=True)
    blob: str
    role: str  # recording | window
    added_at: float = 0.0


class CallCategory(SQLModel, table=True):
    """A category rule that matched a call (`nlp/categories.py`). Live calls get the row as
    soon as the sentence that makes the rule match is stored: that is the alert."""

    __tablename__ = "call_categories"
    __table_args__ = (
        UniqueConstraint("call_id", "category", name="uq_call_category"),
        Index("ix_call_categories_category_matched", "category", "matched_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    call_id: str = Field(index=True)
    category: str
    # The sentence that made the rule match: its index in the call's sentences in time order, and its call time (s).
    first_sentence_idx: int | None = None
    start: float | None = None
    matched_at: float = 0.0  # wall-clock time the match was stored


class DeadLetterRecord(SQLModel, table=True):
    __tablename__ = "dead_letters"
    id: Optional[int] = Field(default=None, primary_key=True)
    stage: str
    call_id: str | None = Field(default=None, index=True)
    reason: str
    detail: str = ""
    at: float = 0.0
