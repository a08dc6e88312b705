"""Surviving a dependency's outage (Kafka broker, database, ASR server): wait with backoff,
say so once when it starts and once when it ends (not a line per retry), and give up after
a configured time with an `OutageGaveUp` that names what was not done.

tenacity is not used here: it is not a declared dependency of callsense, and the state kept
across calls (down since when, logged already or not, shared by the stage threads of one
process) is what this class is for; the backoff itself is three lines.
"""

from __future__ import annotations

import logging
import threading
import time

from callsense.core.errors import OutageGaveUp


class Outage:
    """One dependency's availability, shared by the threads that use it.

    `failed(reason)` after a failed attempt (logs "X unreachable, retrying" on the first
    one; raises OutageGaveUp once the outage has lasted `give_up_s`), `wait()` before the
    next attempt (exponential backoff, cut short by `stop`), `ok()` after a success (logs
    "X back after N s" when it had been down)."""

    def __init__(self, what: str, give_up_s: float, log: logging.Logger, *, first_wait_s: float = 0.5,
                 max_wait_s: float = 10.0, stop: threading.Event | None = None):
        self.what = what
        self.give_up_s = give_up_s
        self.log = log
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.stop = stop
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_wait = first_wait_s
        self.reason = ""
        self.outages = 0  # how many times it went down (for tests and benchmarks)
        self.attempts = 0  # failed attempts in the current outage

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def down_for(self) -> float:
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def failed(self, reason: str, unsent: str = "") -> None:
        """Record a failed attempt; raise OutageGaveUp when the outage is over the limit.
        `unsent`: what would be lost by giving up now (put in the error's message)."""
        reason = (reason.strip().splitlines() or ["unknown error"])[0][:300]
        with self._lock:
            self.reason = reason
            if self._down_since is None:
                self._down_since = time.monotonic()
                self._next_wait = self.first_wait_s
                self.outages += 1
                self.attempts = 1
                limit = f", giving up after {self.give_up_s:.0f} s" if self.give_up_s != float("inf") else ""
                self.log.warning("%s unreachable (%s); retrying with backoff%s", self.what, reason, limit)
            else:  # one line per retry only at debug level: the warning above said it once
                self.attempts += 1
                self.log.debug("%s still unreachable (attempt %d): %s", self.what, self.attempts, reason)
            down = time.monotonic() - self._down_since
        if down >= self.give_up_s:
            raise OutageGaveUp(self.what, down, reason, unsent)

    def wait(self) -> None:
        with self._lock:
            delay = self._next_wait
            self._next_wait = min(self._next_wait * 2, self.max_wait_s)
            if self._down_since is not None:  # never sleep past the give-up point
                left = self.give_up_s - (time.monotonic() - self._down_since)
                delay = max(0.05, min(delay, left))
        if self.stop is not None:
            self.stop.wait(delay)
        else:
            time.sleep(delay)

    def ok(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            down = time.monotonic() - self._down_since
            self._down_since = None
            self._next_wait = self.first_wait_s
            self.attempts = 0
        self.log.warning("%s back after %.0f s", self.what, down)

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()
