"""Interim text of live calls, as the dashboard's Live page reads it.

The segment stage publishes `InterimTranscript` events to `<prefix>.interim` while a live
utterance is open (`ingest/stages/segment.py`). They are not stored (no table: the final
utterance replaces them within a second or two). The Live page follows the topic itself:
`InterimFeed` is a consumer without a consumer group (every dashboard process sees every
interim, nothing is committed), assigned every partition and started STALE_S back in time,
whose thread keeps only the newest interim per (call, channel) in memory. Works the same for any
number of Kafka workers; `callsense process` (embedded) has no live calls, so nothing is lost
there. Without a reachable broker the Live page simply shows no interim lines.
"""

from __future__ import annotations

import logging
import threading
import time

from callsense.core.events import InterimTranscript, decode_event
from callsense.core.settings import Settings

log = logging.getLogger("callsense.interim")

# An interim older than this is no longer shown (its utterance was too short to be kept, or
# the call ended): the final sentence normally replaces it well before.
STALE_S = 15.0


class InterimBoard:
    """Newest interim per (call, channel)."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, int], InterimTranscript] = {}
        self._lock = threading.Lock()

    def put(self, ev: InterimTranscript) -> None:
        key = (ev.call_id, ev.channel)
        with self._lock:
            old = self._latest.get(key)
            if old is None or (ev.index, ev.seq) >= (old.index, old.seq):
                self._latest[key] = ev
            if len(self._latest) > 10_000:  # forget the oldest
                for k in sorted(self._latest, key=lambda k: self._latest[k].at)[:1000]:
                    del self._latest[k]

    def of_call(self, call_id: str, stored_utterances: dict[int, int] | None = None,
                now: float | None = None) -> list[InterimTranscript]:
        """The call's interims still to show, by channel: those whose utterance has no stored
        final yet (`stored_utterances`: channel -> highest stored utterance index) and that
        are not stale."""
        now = time.time() if now is None else now
        stored_utterances = stored_utterances or {}
        with self._lock:
            found = [ev for (cid, _), ev in self._latest.items() if cid == call_id]
        return sorted((ev for ev in found if now - ev.at <= STALE_S and ev.index > stored_utterances.get(ev.channel, -1)),
                      key=lambda ev: (ev.start, ev.channel))


class InterimFeed(InterimBoard):
    """An `InterimBoard` fed by a thread reading `<prefix>.interim` from its end."""

    def __init__(self, settings: Settings):
        super().__init__()
        self.settings = settings
        self.topic = settings.topic("interim")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interim-feed", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = None
        warned = False
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = KafkaConsumer(bootstrap_servers=self.settings.pipeline.kafka_bootstrap.split(","),
                                             group_id=None, enable_auto_commit=False, request_timeout_ms=15000,
                                             bootstrap_timeout_ms=10000)
                parts = consumer.partitions_for_topic(self.topic)
                if not parts:  # no live call was segmented yet: the topic does not exist
                    self._stop.wait(1.0)
                    continue
                assigned = [TopicPartition(self.topic, p) for p in sorted(parts)]
                consumer.assign(assigned)
                # From STALE_S ago: a page opened mid-utterance shows what is being said at once.
                # (Concrete end offsets, not seek_to_end: that one is resolved at the first poll and
                # would skip what was published in between.)
                since = int((time.time() - STALE_S) * 1000)
                ends = consumer.end_offsets(assigned)
                for tp, found in consumer.offsets_for_times({tp: since for tp in assigned}).items():
                    consumer.seek(tp, ends[tp] if found is None else found.offset)
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for r in records:
                            try:
                                ev = decode_event(r.value)
                            except ValueError:
                                continue
                            if isinstance(ev, InterimTranscript):
                                self.put(ev)
                    if len(consumer.partitions_for_topic(self.topic) or ()) != len(assigned):
                        break  # partitions were added: assign again
            except Exception as e:  # the broker is away: no interim lines until it is back
                if not warned:
                    log.warning("interim text unavailable (Kafka at %s): %s", self.settings.pipeline.kafka_bootstrap, e)
                    warned = True
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:
                        pass
                    consumer = None
                self._stop.wait(2.0)
        if consumer is not None:
            consumer.close()
