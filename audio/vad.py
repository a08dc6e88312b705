"""Voice activity: where utterances start and end, in one streaming code path.

Recorded calls push the whole channel at once, live calls push 100 ms chunks; both go
through the same `UtteranceEndpointer`, so a live call is split exactly as its recording
would be. Speech probabilities come from the Silero VAD model that faster-whisper ships
(ONNX, run by onnxruntime), fed frame by frame with its recurrent state carried over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAME = 512  # samples per Silero frame at 16 kHz (32 ms)
CONTEXT = 64
RATE = 16000


def _silero_path() -> Path:
    from faster_whisper.utils import get_assets_path

    return Path(get_assets_path()) / "silero_vad_v6.onnx"


class SileroModel:
    """The ONNX session, loaded once per process and shared by all streams."""

    def __init__(self, path: Path | None = None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self.session = onnxruntime.InferenceSession(
            str(path or _silero_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )


class SpeechProbabilityStream:
    def __init__(self, model: SileroModel):
        self._model = model
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities for every complete 512-sample frame now available."""
        buf = np.concatenate([self._rest, audio.astype(np.float32, copy=False)])
        n = buf.size // FRAME
        self._rest = buf[n * FRAME:]
        if n == 0:
            return np.zeros(0, np.float32)
        frames = buf[: n * FRAME].reshape(n, FRAME)
        contexts = np.vstack([self._context[None, :], frames[:-1, -CONTEXT:]])
        batch = np.concatenate([contexts, frames], axis=1)
        self._context = frames[-1, -CONTEXT:].copy()
        out, self._h, self._c = self._model.session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(out, np.float32).reshape(-1)


@dataclass(frozen=True)
class EndpointerOptions:
    threshold: float = 0.5
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    min_speech_ms: int = 250
    max_utterance_s: float = 15.0


@dataclass(frozen=True)
class Span:
    start: int  # samples
    end: int


class UtteranceEndpointer:
    """Turns frame probabilities into closed utterance spans (with hysteresis, a minimum
    silence to end, a maximum length cut at the last short pause, and padding)."""

    def __init__(self, opts: EndpointerOptions):
        self.o = opts
        self._neg = max(opts.threshold - 0.15, 0.01)
        self._frame_i = 0
        self._start: int | None = None
        self._silence_from: int | None = None
        self._last_pause: int | None = None  # a >= ~100 ms pause inside the current utterance
        self._prev_end = 0
        self._pending: Span | None = None  # closed but not yet padded on the right
        self._min_silence = opts.min_silence_ms * RATE // 1000
        self._pad = opts.speech_pad_ms * RATE // 1000
        self._min_speech = opts.min_speech_ms * RATE // 1000
        self._max_len = int(opts.max_utterance_s * RATE) - 2 * self._pad - FRAME
        self._short_pause = 98 * RATE // 1000

    @property
    def in_speech(self) -> bool:
        return self._start is not None

    @property
    def pad(self) -> int:
        """Samples of padding after the speech of a closed span (span.end = speech end + pad)."""
        return self._pad

    @property
    def pending_span_start(self) -> int | None:
        """Where the open utterance's span will start when it closes (None: nothing open)."""
        return None if self._start is None else max(self._start - self._pad, self._prev_end)

    @property
    def open_since(self) -> int | None:
        """First sample still needed by an utterance not yet emitted (None: nothing open)."""
        return None if self._start is None else max(self._start - self._pad, 0)

    @property
    def pause(self) -> tuple[int, int] | None:
        """(where the pause began, samples of it seen so far) while an open utterance is in a
        pause shorter than min_silence; None while speaking or when nothing is open."""
        if self._start is None or self._silence_from is None:
            return None
        return self._silence_from, self._frame_i * FRAME - self._silence_from

    def close_at_pause(self) -> list[Span]:
        """Close the open utterance where its current pause began (the caller knows a sentence
        ended there); nothing when not in a pause or when the speech before it is shorter than
        min_speech_ms (it stays open and ends as usual)."""
        closed: list[Span] = []
        if self._start is not None and self._silence_from is not None and self._silence_from - self._start >= self._min_speech:
            self._close(self._silence_from, closed)
        return closed

    def push(self, probs: np.ndarray) -> list[Span]:
        closed: list[Span] = []
        for p in probs:
            pos = self._frame_i * FRAME
            self._frame_i += 1
            if self._start is None:
                if p >= self.o.threshold:
                    self._start, self._silence_from, self._last_pause = pos, None, None
                continue
            if p >= self.o.threshold:
                if self._silence_from is not None and pos - self._silence_from >= self._short_pause:
                    self._last_pause = self._silence_from
                self._silence_from = None
            elif p < self._neg and self._silence_from is None:
                self._silence_from = pos
            if self._silence_from is not None and pos + FRAME - self._silence_from >= self._min_silence:
                self._close(self._silence_from, closed)
            elif pos + FRAME - self._start > self._max_len:
                cut = self._last_pause if self._last_pause and self._last_pause > self._start else pos + FRAME
                self._close(cut, closed, restart_at=cut)
        return closed

    def finish(self) -> list[Span]:
        closed: list[Span] = []
        if self._start is not None:
            self._close(self._silence_from or self._frame_i * FRAME, closed)
        return closed

    def _close(self, end: int, out: list[Span], restart_at: int | None = None) -> None:
        start = self._start
        if end - start >= self._min_speech:
            s = max(start - self._pad, self._prev_end)
            e = end + self._pad
            out.append(Span(s, e))
            self._prev_end = e
        self._start = restart_at
        self._silence_from = None
        self._last_pause = None


def speech_spans(audio: np.ndarray, model: SileroModel, opts: EndpointerOptions) -> list[Span]:
    """All utterances of a finished channel."""
    return spans_of_probabilities(SpeechProbabilityStream(model).push(audio), audio.size, opts)


def spans_of_probabilities(probs: np.ndarray, n_samples: int, opts: EndpointerOptions) -> list[Span]:
    """All utterances of a finished channel of `n_samples`, from its frame probabilities."""
    ep = UtteranceEndpointer(opts)
    spans = ep.push(probs)
    spans += ep.finish()
    return [Span(s.start, min(s.end, n_samples)) for s in spans if s.start < n_samples]
