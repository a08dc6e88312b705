"""The TTS engine interface and its registry.

An engine turns text into mono float32 audio at a sample rate it reports. `synthesize`
returns the whole utterance; `synthesize_stream` yields chunks as they are ready (one per
sentence by default), so a caller can start playing before the text is done.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from callsense.core.settings import Settings
from callsense.core.registry import Registry


@dataclass
class SynthesizedAudio:
    samples: np.ndarray  # mono float32 in [-1, 1]
    sample_rate: int
    text: str = ""

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    def pcm16(self) -> bytes:
        from callsense.audio.pcm import float_to_int16

        return float_to_int16(self.samples).tobytes()

    def wav(self) -> bytes:
        from callsense.audio.pcm import wav_bytes

        return wav_bytes(self.samples, self.sample_rate)

    def resampled(self, rate: int) -> "SynthesizedAudio":
        from callsense.audio.resample import resample

        return SynthesizedAudio(resample(self.samples, self.sample_rate, rate), rate, self.text)


@dataclass(frozen=True)
class Voice:
    name: str
    language: str
    gender: str = ""


class TtsUnavailable(RuntimeError):
    """The engine cannot synthesize (program missing, server down, unknown voice): one clear line."""


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class TtsEngine(ABC):
    name: str = "?"

    @property
    @abstractmethod
    def model_id(self) -> str:
        ...

    @abstractmethod
    def synthesize(self, text: str, *, voice: str | None = None, sample_rate: int | None = None) -> SynthesizedAudio:
        """The whole text as one clip (the engine's native rate unless `sample_rate` is given)."""

    def synthesize_stream(self, text: str, *, voice: str | None = None, sample_rate: int | None = None) -> Iterator[SynthesizedAudio]:
        """Chunks as they are ready: one per sentence unless the engine streams finer."""
        for sentence in split_sentences(text):
            yield self.synthesize(sentence, voice=voice, sample_rate=sample_rate)

    def voices(self) -> list[Voice]:
        return []


tts_engines: Registry[TtsEngine] = Registry(
    "TTS engine",
    lazy={"espeak": "callsense.asr.tts.espeak", "riva": "callsense.asr.tts.riva"},
)


def create_tts_engine(settings: Settings, name: str | None = None) -> TtsEngine:
    return tts_engines.get(name or settings.asr.tts_engine)(settings)
