"""Whisper with Riva-style word boosting and a cheaper decode for interim results.

Word boosting: Riva biases its decoder towards `SpeechContext` phrases by a score; Whisper
has no per-word score, but faster-whisper's `hotwords` puts phrases into the decoder's
prompt, which has the same effect on rare names. Phrases with a positive boost become
hotwords, strongest first; negative boosts (Riva's "suppress this word") are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from callsense.asr.base import RecognizedSegment, RecognizedWord
from callsense.asr.engines.whisper import WhisperEngine

# Whisper's prompt holds at most 223 tokens; keep hotwords well inside it.
MAX_HOTWORD_CHARS = 400


@dataclass(frozen=True)
class RecognizeOptions:
    automatic_punctuation: bool = True
    word_time_offsets: bool = False
    boosted: tuple[tuple[str, float], ...] = ()  # (phrase, boost)

    @property
    def hotwords(self) -> str | None:
        phrases = [p for p, b in sorted(self.boosted, key=lambda pb: -pb[1]) if b > 0 and p.strip()]
        text = ""
        for p in dict.fromkeys(phrases):
            if len(text) + len(p) + 2 > MAX_HOTWORD_CHARS:
                break
            text = f"{text}, {p}" if text else p
        return text or None


class BoostableWhisperEngine(WhisperEngine):
    """The embedded Whisper engine plus hotwords and a cheaper decode for interim results.
    Without either, it is exactly `WhisperEngine.transcribe`."""

    def transcribe_with(self, audio: np.ndarray, *, hotwords: str | None = None, fast: bool = False) -> Iterator[RecognizedSegment]:
        if hotwords is None and not fast:
            yield from self.transcribe(audio)
            return
        segments, _ = self._model.transcribe(
            audio.astype(np.float32, copy=False), language="en", beam_size=1 if fast else self._beam,
            word_timestamps=not fast, condition_on_previous_text=False, vad_filter=False, hotwords=hotwords,
            temperature=0.0 if fast else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        )
        for seg in segments:
            words = [RecognizedWord(w.word, w.start, w.end, w.probability) for w in (seg.words or [])]
            yield RecognizedSegment(text=seg.text.strip(), start=seg.start, end=seg.end, words=words,
                                    confidence=float(np.exp(seg.avg_logprob)) if seg.avg_logprob is not None else None)
