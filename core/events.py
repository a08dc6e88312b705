"""Every record that travels between pipeline stages, declared once.

Events are pydantic models with a `kind` tag so the same JSON goes over Kafka and through
the in-process transport. Audio rides inside an event while it is small and by claim-check
(a content-addressed blob reference) when it is large: see `AudioRef`.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter

from callsense.core.claims import AudioRef, ClaimModel


class EventModel(ClaimModel):
    pass


class CallRecorded(EventModel):
    """A finished recording (any format ffmpeg reads) entering the pipeline."""

    kind: Literal["call_recorded"] = "call_recorded"
    call_id: str
    source_name: str
    audio: AudioRef
    agent_id: str | None = None
    received_at: float = Field(default_factory=time.time)


class CallChunk(EventModel):
    """One piece of a live call, in order by `seq`. PCM is interleaved per channel."""

    kind: Literal["call_chunk"] = "call_chunk"
    call_id: str
    seq: int
    sample_rate: int
    channels: int
    encoding: Literal["s16le", "mulaw", "alaw"] = "s16le"
    pcm: bytes = b""
    final: bool = False
    agent_id: str | None = None
    source_name: str = "live"
    stream_started_at: float
    sent_at: float = Field(default_factory=time.time)


class CallOpened(EventModel):
    kind: Literal["call_opened"] = "call_opened"
    call_id: str
    source_name: str
    # text: a chat or email conversation (no audio; it enters at the sentiment stage's topic);
    # dataset: a pre-split dataset's conversation (one file per utterance, `import-dataset`).
    mode: Literal["recorded", "live", "text", "dataset"]
    channels: int
    speakers: list[str]
    agent_id: str | None = None
    started_at: float
    audio_blob: str | None = None  # the original recording in the blob store


class Word(EventModel):
    text: str
    start: float
    end: float
    probability: float = 1.0


class UtteranceSpan(EventModel):
    index: int
    start: float  # seconds from the start of the call
    end: float
    offset: float  # where this utterance begins inside the batch's audio


class UtteranceBatch(EventModel):
    """One or more utterances of one channel, their 16 kHz s16le audio back to back, so
    one ASR pass can serve several short utterances (Whisper costs the same per window)."""

    kind: Literal["utterance_batch"] = "utterance_batch"
    call_id: str
    channel: int
    speaker: str
    agent_id: str | None = None
    utterances: list[UtteranceSpan]
    audio: AudioRef
    # Wall-clock time the call started, for live calls (latency accounting).
    live_started_at: float | None = None
    # A live utterance the segment stage has heard already (its sentence-pause check
    # recognized exactly this speech): its words in call time, PII already redacted, and the
    # model that heard them. The transcribe stage takes them instead of recognizing the
    # utterance a second time when its own engine has that model.
    recognized: list[Word] | None = None
    recognized_by: str | None = None


class CallSegmented(EventModel):
    """Sent once a call's audio is fully segmented: how many utterances to expect."""

    kind: Literal["call_segmented"] = "call_segmented"
    call_id: str
    utterances_per_channel: dict[int, int]
    duration_s: float


class SentenceSentiment(EventModel):
    label: Literal["negative", "neutral", "positive"]
    confidence: float
    model: str


class Sentence(EventModel):
    index: int
    text: str
    start: float
    end: float
    words: list[Word] = []
    sentiment: SentenceSentiment | None = None
    # RMS level of the sentence's audio in dBFS, set where the audio is at hand (the transcribe stage).
    loudness_dbfs: float | None = None


class PiiSpan(EventModel):
    """Where redacted PII was said (call time, s): what the store stage silences in the recording."""

    kind: str
    start: float
    end: float


class TranscribedUtterance(EventModel):
    kind: Literal["transcribed"] = "transcribed"
    call_id: str
    channel: int
    speaker: str
    agent_id: str | None = None
    index: int
    start: float
    end: float
    text: str
    confidence: float | None = None
    asr_model: str
    sentences: list[Sentence]
    live_started_at: float | None = None
    sentiment_model: str | None = None
    # Times of the words the transcribe stage redacted, and the claim-check blob (None: inline)
    # of the audio it heard them in: that blob holds them in clear until the call is done.
    pii_spans: list[PiiSpan] = []
    window_blob: str | None = None


class ScoredUtterance(TranscribedUtterance):
    """A transcribed utterance whose sentences all carry a sentiment."""

    kind: Literal["scored"] = "scored"  # type: ignore[assignment]


class InterimTranscript(EventModel):
    """Live calls: what the utterance still being spoken says so far (not stored; replaced by
    the final `TranscribedUtterance` of the same `index`). `seq` grows per call and channel."""

    kind: Literal["interim"] = "interim"
    call_id: str
    channel: int
    speaker: str = ""
    index: int  # the utterance it will become (utterance idx of the final one)
    text: str
    start: float  # call time (s) where the utterance began
    end: float  # call time (s) of the last audio heard
    seq: int
    at: float = Field(default_factory=time.time)


class DeadLetter(EventModel):
    kind: Literal["dead_letter"] = "dead_letter"
    stage: str
    call_id: str | None = None
    reason: str
    detail: str = ""
    # False when the call goes on without the bad part (a gap in a live call).
    fatal: bool = True
    at: float = Field(default_factory=time.time)


Event = Annotated[
    Union[
        CallRecorded,
        CallChunk,
        CallOpened,
        UtteranceBatch,
        CallSegmented,
        TranscribedUtterance,
        ScoredUtterance,
        InterimTranscript,
        DeadLetter,
    ],
    Field(discriminator="kind"),
]

_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode_event(event: EventModel) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def decode_event(data: bytes) -> EventModel:
    return _adapter.validate_json(data)


def event_key(event: EventModel) -> str | None:
    return getattr(event, "call_id", None)
