"""The embedded engine behind riva-serve, with Riva's recognition options mapped onto it.

Word boosting: Riva biases its decoder towards `SpeechContext` phrases by a score; Whisper
has no per-word score, but faster-whisper's `hotwords` puts phrases into the decoder's
prompt, which has the same effect on rare names. Phrases with a positive boost become
hotwords, strongest first; negative boosts (Riva's "suppress this word") are ignored.
"""

from __future__ import annotations

import logging
import queue
import re
from contextlib import contextmanager
from dataclasses import dataclass, field


import numpy as np

from callsense.asr.base import AsrEngine, AsrUnavailable, RecognizedSegment, RecognizedWord, create_asr_engine
from callsense.asr.engines.boostable_whisper import BoostableWhisperEngine, RecognizeOptions  # noqa: F401  (re-used by riva-serve's services)
from callsense.core.settings import Settings

log = logging.getLogger("callsense.riva_serve")

@dataclass
class Recognized:
    """One recognized stretch of speech, times in seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    words: list[RecognizedWord] = field(default_factory=list)
    confidence: float = 0.0


_PUNCT_EDGES = re.compile(r"^[^\w']+|[^\w']+$")


def unpunctuated(word: str) -> str:
    return _PUNCT_EDGES.sub("", word.strip()).lower()


class EmbeddedRecognizer:
    """A pool of engine instances (each decode borrows one), so `riva_serve_asr_parallel`
    decodes run at once and engines need not be thread-safe."""

    def __init__(self, settings: Settings):
        name = settings.riva.serve_asr_engine
        if name == "riva":
            raise AsrUnavailable("riva-serve cannot be backed by the riva engine (it would call itself): "
                                 "set CALLSENSE_RIVA_SERVE_ASR_ENGINE=whisper")
        self._pool: queue.Queue[AsrEngine] = queue.Queue()
        for _ in range(settings.riva.serve_asr_parallel):
            if name == "whisper":
                engine: AsrEngine = BoostableWhisperEngine(settings)
            else:
                engine = create_asr_engine(settings.model_copy(update={"asr_engine": name}))
            self._pool.put(engine)
        first = self._pool.queue[0]
        self.model_id = first.model_id
        self.supports_boosting = isinstance(first, BoostableWhisperEngine)
        self._warned_boost = False

    @contextmanager
    def _engine(self, block: bool = True):
        try:
            engine = self._pool.get(block=block)
        except queue.Empty:
            yield None
            return
        try:
            yield engine
        finally:
            self._pool.put(engine)

    def recognize(self, audio: np.ndarray, opts: RecognizeOptions, *, fast: bool = False,
                  block: bool = True) -> list[Recognized] | None:
        """Decode 16 kHz mono audio; `fast` (interim results) uses greedy decoding without
        word times. With `block=False` it returns None at once when every engine is busy:
        interim results are optional and must never delay a final one."""
        hotwords = opts.hotwords
        if hotwords and not self.supports_boosting and not self._warned_boost:
            log.warning("word boosting is ignored: the %s engine has no hotwords", self.model_id)
            self._warned_boost = True
        with self._engine(block) as engine:
            if engine is None:
                return None
            if isinstance(engine, BoostableWhisperEngine):
                segments = list(engine.transcribe_with(audio, hotwords=hotwords, fast=fast))
            else:
                segments = list(engine.transcribe(audio))
        return [self._shape(s, opts) for s in segments if s.text.strip()]

    @staticmethod
    def _shape(seg: RecognizedSegment, opts: RecognizeOptions) -> Recognized:
        words = [RecognizedWord(w.text.strip(), w.start, w.end, w.probability) for w in seg.words if w.text.strip()]
        if not opts.automatic_punctuation:
            words = [RecognizedWord(unpunctuated(w.text), w.start, w.end, w.probability) for w in words]
            words = [w for w in words if w.text]
            text = " ".join(w.text for w in words) if words else " ".join(filter(None, map(unpunctuated, seg.text.split())))
        else:
            text = seg.text.strip()
        return Recognized(text=text, start=seg.start, end=seg.end, words=words, confidence=seg.confidence or 0.0)
