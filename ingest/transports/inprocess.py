"""Embedded mode: stages connected by in-memory queues, driven to completion."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Iterable, Sequence

from callsense.core.errors import TransientError
from callsense.core.events import EventModel
from callsense.ingest.stage import TOPIC_OF_KIND, Stage, run_safely


class InProcessTransport:
    """Each stage reads its own queue of every input topic (two stages may share a topic,
    as segment and live-transcribe share `calls`, like two Kafka consumer groups)."""

    def __init__(self, stages: Sequence[Stage], batch_size: int = 64, outage=None):
        """outage: an `Outage` (ingest/transports/outage.py); with one, a batch that fails
        with TransientError (database or ASR server down) is retried with its backoff until
        it passes or the outage gives up (OutageGaveUp, the batch still queued); without,
        the TransientError propagates."""
        self.stages = list(stages)
        self.outage = outage
        self.batch_size = batch_size
        self._consumers: dict[str, list[int]] = defaultdict(list)
        for i, st in enumerate(self.stages):
            for t in st.inputs:
                self._consumers[t].append(i)
        self._queues: dict[tuple[int, str], deque[EventModel]] = defaultdict(deque)
        self.unrouted: list[EventModel] = []

    def publish(self, events: Iterable[EventModel]) -> None:
        for ev in events:
            topic = TOPIC_OF_KIND[ev.kind]
            if topic in self._consumers:
                for i in self._consumers[topic]:
                    self._queues[(i, topic)].append(ev)
            else:
                self.unrouted.append(ev)

    def drain(self) -> None:
        """Run stages until every queue is empty (earlier stages first, in batches)."""
        while True:
            progressed = False
            for i, st in enumerate(self.stages):
                for topic in st.inputs:
                    q = self._queues[(i, topic)]
                    while q:
                        batch = [q.popleft() for _ in range(min(self.batch_size, len(q)))]
                        try:
                            out = run_safely(st, batch)
                        except TransientError as e:
                            q.extendleft(reversed(batch))  # retried as it was, in order
                            if self.outage is None:
                                raise
                            self.outage.failed(str(e))
                            self.outage.wait()
                            continue
                        if self.outage is not None:
                            self.outage.ok()
                        self.publish(out)
                        progressed = True
            if not progressed:
                return

    def queued_calls(self) -> list[str]:
        """Call ids of events still waiting in a queue (e.g. after OutageGaveUp)."""
        seen: dict[str, None] = {}
        for q in self._queues.values():
            for ev in q:
                if getattr(ev, "call_id", None):
                    seen[ev.call_id] = None
        return list(seen)
