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


class DeadLetterRecord(SQLModel, table=True):
    __tablename__ = "dead_letters"
    id: Optional[int] = Field(default=None, primary_key=True)
    stage: str
    call_id: str | None = Field(default=None, index=True)
    reason: str
    detail: str = ""
    at: float = 0.0
