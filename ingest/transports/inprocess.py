"""Embedded mode: stages connected by in-memory queues, driven to completion."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Iterable, Sequence

from callsense.ingest.events import EventModel
from callsense.ingest.stage import TOPIC_OF_KIND, Stage, run_safely


class InProcessTransport:
    """Each stage reads its own queue of every input topic (two stages may share a topic,
    as segment and live-transcribe share `calls`, like two Kafka consumer groups)."""

    def __init__(self, stages: Sequence[Stage], batch_size: int = 64):
        self.stages = list(stages)
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
                        self.publish(run_safely(st, batch))
                        progressed = True
            if not progressed:
                return
