"""The ASR engine interface. Engines yield segments as they decode (like faster-whisper),
so callers can stream results."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from callsense.core.settings import Settings
from callsense.core.registry import Registry


@dataclass
class RecognizedWord:
    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass
class RecognizedSegment:
    text: str
    start: float
    end: float
    words: list[RecognizedWord] = field(default_factory=list)
    confidence: float | None = None

    def timed_words(self) -> list[RecognizedWord]:
        """Its words with times; an engine that gives none: the segment as one word."""
        return self.words or [RecognizedWord(self.text, self.start, self.end, self.confidence or 1.0)]


class AsrEngine(ABC):
    """16 kHz mono float32 in, punctuated text with word times out."""

    name: str = "?"
    # Seconds of audio one pass always costs (Whisper: 30), or None when the cost follows
    # the audio's length. The transcribe stage packs short utterances up to this window.
    fixed_window_s: float | None = None

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Engine and model version, stored with every transcript."""

    @abstractmethod
    def transcribe(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        ...

    def transcribe_live(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        """A live call's utterances, where a person waits for the result: engines may trade
        a little accuracy for speed here (Whisper decodes greedily)."""
        return self.transcribe(audio)


class AsrUnavailable(RuntimeError):
    """The engine cannot be used (missing model, bad checksum, server down): one clear line."""


asr_engines: Registry[AsrEngine] = Registry(
    "ASR engine",
    lazy={
        "whisper": "callsense.asr.engines.whisper",
        "riva": "callsense.asr.engines.riva",
        "nemo": "callsense.asr.engines.nemo",
        "moonshine": "callsense.asr.engines.moonshine",
    },
)


def create_asr_engine(settings: Settings) -> AsrEngine:
    return asr_engines.get(settings.asr.engine)(settings)
