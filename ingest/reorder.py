"""Live chunks back in call order, for every stage that consumes `CallChunk`s (the segment
stage's VAD path and the live-transcribe stage's Riva streams).

Kafka keeps a call's chunks in order (they share a key), but a producer's retry, a
redelivery after a crash or a second source can still bring one twice or late. A call
opens at its chunk 0; chunks seen before it wait as orphans (within the window); a
duplicate is dropped; a gap wider than the window is given up on and reported as
`MissingChunks`, which the stage fills with silence so the call goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from callsense.core.events import CallChunk

log = logging.getLogger("callsense.pipeline")


@dataclass(frozen=True)
class MissingChunks:
    """Chunks `first`..`last` of a live call never arrived within the reorder window."""

    first: int
    last: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


class ChunkReorderBuffer:
    """Per-call order of live chunks: `starts_call` for a call not open yet, then `push`."""

    def __init__(self, window: int, stage: str):
        self.window = window
        self.stage = stage
        self._next: dict[str, int] = {}
        self._held: dict[str, dict[int, CallChunk]] = {}
        # Chunks of calls whose first chunk has not been seen (yet): held within the window.
        self._orphans: dict[str, dict[int, CallChunk]] = {}

    def open_calls(self) -> set[str]:
        """Calls with chunks in memory (opened, or orphans waiting for their chunk 0)."""
        return set(self._next) | set(self._orphans)

    def starts_call(self, ch: CallChunk) -> bool:
        """For a chunk of a call that is not open: True when it is the call's chunk 0 (the
        stage opens the call, then pushes it); otherwise it is held as an orphan, or skipped."""
        if ch.seq == 0:
            return True
        orphans = self._orphans.setdefault(ch.call_id, {})
        orphans[ch.seq] = ch
        if len(orphans) > self.window or (ch.final and ch.seq > self.window):
            # After a restart the consumer replays from the oldest open call; chunks of
            # calls that had finished before that point belong to work already done.
            del self._orphans[ch.call_id]
            log.info("%s: skipped %d chunks of call %s: its start precedes this consumer's position",
                     self.stage, len(orphans), ch.call_id)
        return False

    def push(self, ch: CallChunk) -> list[CallChunk | MissingChunks]:
        """The chunks (and given-up gaps) that are now in order, oldest first. The call's
        state ends with its final chunk; a duplicate gives nothing."""
        call_id = ch.call_id
        if call_id not in self._next:
            self._next[call_id] = 0
            self._held[call_id] = self._orphans.pop(call_id, {})
        nxt, held = self._next[call_id], self._held[call_id]
        if ch.seq < nxt or ch.seq in held:
            return []  # a redelivered duplicate
        held[ch.seq] = ch
        out: list[CallChunk | MissingChunks] = []
        while held:
            if nxt in held:
                chunk = held.pop(nxt)
                nxt += 1
                out.append(chunk)
                if chunk.final:
                    self.forget(call_id)
                    return out
            elif max(held) - nxt > self.window:
                first = min(held)
                out.append(MissingChunks(nxt, first - 1))
                nxt = first
            else:
                break
        self._next[call_id] = nxt
        return out

    def forget(self, call_id: str) -> None:
        self._next.pop(call_id, None)
        self._held.pop(call_id, None)
        self._orphans.pop(call_id, None)
