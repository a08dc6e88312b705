"""Interim text for the segment stage: recognition of open live utterances off the stage's
own thread, so that final utterances never wait for an interim.

One background thread (niced by 10 on Linux, so the stages' own work goes first on a busy
machine) with its own engine instance on one CPU thread. It holds at most one request per
call and channel: a newer request replaces a pending one, and a request that waited longer
than `max_wait_s` is dropped (interims are best effort; the final utterance replaces them).
Finished interims are collected by the stage at its next batch (live chunks arrive every
~100 ms), or at once with `background=False` (tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from callsense.core.events import InterimTranscript

log = logging.getLogger("callsense.segment")


class FinalsFirst:
    """Final utterances before interims, inside one worker process: the transcribe stage
    holds `final()` while it recognizes a final utterance, and the interim thread starts no
    recognition meanwhile (the OS priority alone still lets an interim take a core from a
    final on a busy machine). Stages in other processes do not see it; nothing waits on it
    for long (an interim that waited too long is dropped anyway)."""

    def __init__(self):
        self._busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def final(self) -> Iterator[None]:
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def wait_clear(self, timeout: float) -> bool:
        """Until no final is being recognized (True), or timeout seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._busy == 0, timeout)


def partial_redactor(redactor) -> Callable[[str], str]:
    """The PII masking of interim text with the stage's own `PiiRedactor` (the pipeline's
    mode), numbers cut short masked too (an interim may end in the middle of a card number)."""
    return lambda text: redactor.redact_partial(text).text


@dataclass
class InterimRequest:
    call_id: str
    channel: int
    speaker: str
    index: int
    start: float
    end: float
    seq: int
    audio: np.ndarray
    asked_at: float


class InterimRunner:
    def __init__(self, factory: Callable[[], object | None], *, background: bool = True, max_wait_s: float = 0.6,
                 clock: Callable[[], float] = time.monotonic, finals_first: FinalsFirst | None = None,
                 redact: Callable[[str], str] | None = None):
        self._factory = factory
        # Interim text leaves the process (Kafka's interim topic, the Live page): PII is masked
        # first, numbers cut short included (`PiiRedactor.redact_partial`).
        self._redact = redact
        self._engine = None
        self._failed = False
        self.background = background
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.finals_first = finals_first
        self._pending: dict[tuple[str, int], InterimRequest] = {}
        self._done: list[InterimTranscript] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.busy = False

    def usable(self) -> bool:
        """False once the engine turned out to pay for a fixed window (or could not load)."""
        if self.background:
            return not self._failed
        return self._load() is not None

    def _load(self):
        if self._engine is None and not self._failed:
            try:
                engine = self._factory()
            except Exception as e:
                log.warning("no interim text: the live engine cannot load: %s", e)
                engine = None
            if engine is None or getattr(engine, "fixed_window_s", None) is not None:
                self._failed = True  # a fixed-window engine cannot keep up: no interims
                return None
            self._engine = engine
        return self._engine

    def ask(self, req: InterimRequest) -> None:
        if not self.background:
            ev = self._recognize(req)
            if ev is not None:
                self._done.append(ev)
            return
        with self._cond:
            self._pending[(req.call_id, req.channel)] = req
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="interim", daemon=True)
                self._thread.start()
            self._cond.notify()

    def collect(self) -> list[InterimTranscript]:
        with self._cond:
            done, self._done = self._done, []
        return done

    def wait_idle(self) -> None:
        """Until every request asked so far was recognized or dropped (benchmarks, tests)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending and not self.busy)

    def forget(self, call_id: str) -> None:
        with self._cond:
            for key in [k for k in self._pending if k[0] == call_id]:
                del self._pending[key]

    def _recognize(self, req: InterimRequest) -> InterimTranscript | None:
        engine = self._load()
        if engine is None:
            return None
        try:
            text = " ".join(s.text.strip() for s in engine.transcribe_live(req.audio) if s.text.strip())
        except Exception as e:  # best effort: the final utterance is what counts
            log.warning("interim recognition failed for live call %s: %s", req.call_id, e)
            return None
        if self._redact is not None:
            text = self._redact(text).strip()
        if not text:
            return None
        return InterimTranscript(call_id=req.call_id, channel=req.channel, speaker=req.speaker, index=req.index,
                                 text=text, start=req.start, end=req.end, seq=req.seq)

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
            if self.finals_first is not None and not self.finals_first.wait_clear(self.max_wait_s):
                with self._cond:  # finals kept the CPU all that time: drop what went stale meanwhile
                    now = self.clock()
                    for key in [k for k, r in self._pending.items() if now - r.asked_at > self.max_wait_s]:
                        del self._pending[key]
                    self._cond.notify_all()
                continue
            with self._cond:
                if not self._pending:
                    continue
                key = min(self._pending, key=lambda k: self._pending[k].asked_at)
                req = self._pending.pop(key)
                self.busy = True
                self._cond.notify_all()
            ev = None
            try:
                if self.clock() - req.asked_at <= self.max_wait_s:
                    ev = self._recognize(req)
            finally:
                with self._cond:
                    if ev is not None:
                        self._done.append(ev)
                    self.busy = False
                    self._cond.notify_all()
