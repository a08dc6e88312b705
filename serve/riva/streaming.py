"""Streaming recognition for riva-serve: the same endpointer the live pipeline uses
(Silero VAD + `UtteranceEndpointer`) cuts the stream into utterances; each closed
utterance becomes a final result, and while one is open an interim result is decoded
every `riva_serve_interim_s` seconds of new audio (greedy, cheaper than the final pass).

Interim results give way under load: one is skipped when every engine is busy, and the
gap to the next grows to twice the time the last one took, so they never cost more than
half of one engine per stream and do not queue in front of final results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from callsense.serve.riva.recognizer import EmbeddedRecognizer, Recognized, RecognizeOptions
from callsense.audio.vad import EndpointerOptions, SileroModel, SpeechProbabilityStream, UtteranceEndpointer

RATE = 16000


@dataclass
class StreamResult:
    """What one StreamingRecognitionResult will carry (times from the start of the stream)."""

    text: str
    is_final: bool
    stability: float
    start: float
    end: float
    words: list = field(default_factory=list)
    confidence: float = 0.0
    channel_tag: int = 0
    audio_processed: float = 0.0


def _stability(previous: list[str], current: list[str]) -> float:
    """Share of the interim's words that the previous interim already had, in order
    (0.1 when nothing repeats, up to 0.9): how likely the words are to stay."""
    if not current:
        return 0.1
    same = 0
    for a, b in zip(previous, current):
        if a.lower() != b.lower():
            break
        same += 1
    return round(0.1 + 0.8 * same / len(current), 3)


class ChannelStream:
    """One channel of one StreamingRecognize call."""

    def __init__(self, recognizer: EmbeddedRecognizer, vad: SileroModel, opts: RecognizeOptions,
                 endpointing: EndpointerOptions, *, interim: bool, interim_every_s: float, channel_tag: int = 0):
        self.recognizer = recognizer
        self.opts = opts
        self.interim = interim
        self.interim_every = int(interim_every_s * RATE)
        self.channel_tag = channel_tag
        self._probs = SpeechProbabilityStream(vad)
        self._endpointer = UtteranceEndpointer(endpointing)
        self._audio = np.zeros(0, np.float32)
        self._base = 0  # stream sample index of _audio[0]
        self._received = 0
        self._interim_at: int | None = None  # stream sample position of the last interim decode
        self._interim_gap = self.interim_every  # samples of new audio before the next interim
        self._last_interim_words: list[str] = []

    @property
    def audio_processed(self) -> float:
        return self._received / RATE

    def push(self, audio: np.ndarray) -> list[StreamResult]:
        self._audio = np.concatenate([self._audio, audio.astype(np.float32, copy=False)])
        self._received += audio.size
        out = [self._final(span.start, span.end) for span in self._endpointer.push(self._probs.push(audio))]
        out = [r for r in out if r is not None]
        open_since = self._endpointer.open_since
        if self.interim and open_since is not None:
            since = max(open_since, self._interim_at or 0)
            if self._received - since >= self._interim_gap:
                result = self._interim_result(open_since)
                if result is not None:
                    out.append(result)
        self._trim()
        return out

    def finish(self) -> list[StreamResult]:
        out = [self._final(span.start, span.end) for span in self._endpointer.finish()]
        return [r for r in out if r is not None]

    def _trim(self) -> None:
        keep_from = self._endpointer.open_since
        if keep_from is None:
            keep_from = self._received - RATE // 2  # left padding of the next utterance
        drop = max(0, keep_from - self._base)
        if drop:
            self._audio = self._audio[drop:]
            self._base += drop

    def _slice(self, start: int, end: int) -> np.ndarray:
        start = max(start, self._base)
        return self._audio[start - self._base:max(end, start) - self._base]

    def _final(self, start: int, end: int) -> StreamResult | None:
        end = min(end, self._received)
        self._interim_at = None
        self._last_interim_words = []
        pieces = self.recognizer.recognize(self._slice(start, end), self.opts)
        return self._merge(pieces, start, is_final=True, stability=1.0)

    def _interim_result(self, open_since: int) -> StreamResult | None:
        self._interim_at = self._received
        t0 = time.perf_counter()
        pieces = self.recognizer.recognize(self._slice(open_since, self._received), self.opts, fast=True, block=False)
        if pieces is None:
            return None  # every engine is busy: skip this interim
        self._interim_gap = max(self.interim_every, int(2 * (time.perf_counter() - t0) * RATE))
        result = self._merge(pieces, open_since, is_final=False, stability=0.0)
        if result is None:
            return None
        words = result.text.split()
        result.stability = _stability(self._last_interim_words, words)
        self._last_interim_words = words
        return result

    def _merge(self, pieces: list[Recognized], start: int, *, is_final: bool, stability: float) -> StreamResult | None:
        if not pieces:
            return None
        offset = max(start, 0) / RATE
        words = []
        if self.opts.word_time_offsets:
            for p in pieces:
                words += [type(w)(w.text, w.start + offset, w.end + offset, w.probability) for w in p.words]
        confidence = float(np.mean([p.confidence for p in pieces]))
        return StreamResult(
            text=" ".join(p.text for p in pieces), is_final=is_final, stability=stability,
            start=offset + pieces[0].start, end=offset + pieces[-1].end, words=words, confidence=confidence,
            channel_tag=self.channel_tag, audio_processed=self.audio_processed,
        )
