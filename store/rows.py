"""What the store writes, as typed rows: the store knows tables, not pipeline events
(the pipeline's store stage turns its events into these)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CallOpening:
    call_id: str
    source_name: str
    mode: str
    channels: int
    speakers: tuple[str, ...]
    started_at: float
    agent_id: str | None = None
    audio_blob: str | None = None


@dataclass(frozen=True)
class CallSegmentation:
    """How many utterances a call has: the call is done once that many are stored."""

    call_id: str
    utterances_expected: int
    duration_s: float


@dataclass(frozen=True)
class SentenceRow:
    """A sentence without a sentiment is not stored, but still counts as one of its
    utterance's sentences (a re-transcription with fewer deletes the stale tail)."""

    index: int
    text: str
    start: float
    end: float
    sentiment: str | None = None
    confidence: float | None = None
    model: str | None = None
    loudness_dbfs: float | None = None


@dataclass(frozen=True)
class UtteranceRow:
    call_id: str
    channel: int
    index: int
    speaker: str
    start: float
    end: float
    text: str
    asr_model: str
    sentences: tuple[SentenceRow, ...]
    agent_id: str | None = None
    confidence: float | None = None
    live_started_at: float | None = None
    pii_spans: tuple[tuple[str, float, float], ...] = ()  # (kind, start, end) in call time
    window_blob: str | None = None  # the claim-check blob of the audio it was heard in (None: inline)


@dataclass(frozen=True)
class RecordingToRedact:
    """A done call whose stored recording still holds the PII its transcript had redacted."""

    call_id: str
    audio_blob: str
    started_at: float
    spans: tuple[tuple[float, float], ...]  # call time, unpadded


@dataclass(frozen=True)
class ClearBlobRow:
    """A blob holding a call's audio in clear, due to be withdrawn (the call is done)."""

    call_id: str
    blob: str
    role: str  # recording | window
    added_at: float


@dataclass(frozen=True)
class FailureRow:
    """Input that could not be processed. `fatal` marks the call failed."""

    stage: str
    reason: str
    at: float
    call_id: str | None = None
    detail: str = ""
    fatal: bool = True


@dataclass(frozen=True)
class CategoryRow:
    """A category that matched a call, and the sentence (index in time order, call time) that made it match."""

    call_id: str
    category: str
    first_sentence_idx: int | None = None
    start: float | None = None


@dataclass(frozen=True)
class CallForRules:
    """What the category rules read of one call: sentences as (speaker, start, end, text, sentiment,
    loudness_dbfs) tuples in time order."""

    call_id: str
    mode: str
    status: str
    duration_s: float | None
    sentences: list[tuple]


@dataclass
class ResultBatch:
    """Everything one pipeline batch stores, written in one transaction."""

    opened: list[CallOpening] = field(default_factory=list)
    segmented: list[CallSegmentation] = field(default_factory=list)
    utterances: list[UtteranceRow] = field(default_factory=list)
    failures: list[FailureRow] = field(default_factory=list)
    # (call_id, blob, role): audio in clear to withdraw once the call is done (ClearAudioBlob).
    clear_blobs: list[tuple[str, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.opened or self.segmented or self.utterances or self.failures or self.clear_blobs)
