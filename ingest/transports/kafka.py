"""Kafka transport: each stage is a consumer group; outputs are produced and flushed
before the input offsets are committed (at-least-once), and the store's natural keys make
redelivery harmless (exactly-once rows).

Live calls keep segmentation state in memory, so for the segment stage the committed
offset never passes the first chunk of a call that is still open: after a crash the call
is replayed from its start and rebuilds the same utterances.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterable, Sequence

from callsense.core.settings import Settings
from callsense.core.errors import OutageGaveUp, TransientError
from callsense.core.events import EventModel, decode_event, encode_event, event_key
from callsense.ingest.stage import TOPIC_OF_KIND, Stage, dead_letter, run_safely, stage_units
from callsense.ingest.transports.outage import Outage

log = logging.getLogger("callsense.kafka")


class BrokerUnavailable(RuntimeError):
    pass


class StoppedDuringOutage(TransientError):
    """The run was asked to stop (SIGTERM, Ctrl+C) while waiting for the broker."""


def _kafka():
    import kafka  # noqa: F401  (kafka-python)

    return kafka


class KafkaPublisher:
    """One producer per process, shared by the stage threads (KafkaProducer is thread-safe).

    A broker outage is waited out: records stay in the producer's buffer (at most
    kafka_buffer_bytes; `send` waits when it is full), `flush` retries with backoff and logs
    once when the broker goes away and once when it is back, and after
    kafka_outage_give_up_s it raises OutageGaveUp naming the events not sent."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None):
        from kafka import KafkaProducer
        from kafka.errors import KafkaTimeoutError

        self.settings = settings
        self.outage = Outage(f"Kafka broker at {settings.pipeline.kafka_bootstrap}", settings.pipeline.kafka_outage_give_up_s, log, stop=stop)
        self._lock = threading.Lock()
        # (future, kind, call_id, seq, topic, value, key) of every record not yet acknowledged.
        self._pending: list[tuple] = []
        self.sent = 0
        self._pending_bytes = 0  # kafka-python 3's own buffer is unbounded: this bounds it
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=settings.pipeline.kafka_bootstrap.split(","),
                acks="all", linger_ms=2,
                # Retried until acknowledged; a record expires only after the give-up time
                # (plus a margin), so an outage up to that long loses nothing.
                delivery_timeout_ms=int((settings.pipeline.kafka_outage_give_up_s + 60) * 1000),
                max_request_size=max(settings.pipeline.max_message_bytes * 2, 1_048_576),
                request_timeout_ms=15000, max_block_ms=5000, bootstrap_timeout_ms=10000,
                reconnect_backoff_max_ms=2000,
            )
        except KafkaTimeoutError:
            raise broker_unavailable(settings) from None

    def publish(self, events: Iterable[EventModel]) -> list:
        futures = []
        for ev in events:
            data = encode_event(ev)
            if len(data) > self.settings.pipeline.max_message_bytes:
                log.warning("event %s of call %s is %d bytes (> %d): dead-lettered",
                            ev.kind, getattr(ev, "call_id", None), len(data), self.settings.pipeline.max_message_bytes)
                ev = dead_letter("produce", ev, f"oversized {ev.kind} event: {len(data)} bytes > {self.settings.pipeline.max_message_bytes}")
                data = encode_event(ev)
            key = event_key(ev)
            topic = self.settings.topic(TOPIC_OF_KIND[ev.kind])
            futures.append(self._send(topic, data, key.encode() if key else None,
                                      (ev.kind, getattr(ev, "call_id", None), getattr(ev, "seq", None))))
        return futures

    def _send(self, topic: str, value: bytes, key: bytes | None, what: tuple):
        from kafka.errors import KafkaTimeoutError

        if self._pending_bytes + len(value) > self.settings.pipeline.kafka_buffer_bytes:
            self._prune()
            if self._pending_bytes + len(value) > self.settings.pipeline.kafka_buffer_bytes:
                self.flush()  # the buffer is full: wait (through an outage) until it drains
        while True:
            try:
                fut = self._producer.send(topic, value=value, key=key)
            except KafkaTimeoutError as e:
                # No metadata for the topic, or the buffer is full: the broker is away.
                self.outage.failed(str(e) or "send timed out", self._unsent_summary(extra=[what]))
                if self.outage.stopping():
                    raise StoppedDuringOutage(self._unsent_summary()) from None
                self.outage.wait()
                continue
            with self._lock:
                self._pending.append((fut, *what, topic, value, key))
                self._pending_bytes += len(value)
            return fut

    def _prune(self) -> None:
        """Forget acknowledged records (their bytes no longer count against the buffer)."""
        with self._lock:
            done = [p for p in self._pending if p[0].succeeded()]
            self.sent += len(done)
            self._pending = [p for p in self._pending if not p[0].succeeded()]
            self._pending_bytes = sum(len(p[5]) for p in self._pending)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every record published so far is acknowledged, through an outage of
        up to kafka_outage_give_up_s. Failed records (expired in the buffer) are sent again."""
        from kafka.errors import KafkaTimeoutError

        while True:
            # Only what was published before this flush is judged by it: another stage thread
            # may publish meanwhile, and its records are not acknowledged yet (not failed).
            with self._lock:
                pending = list(self._pending)
            try:
                self._producer.flush(timeout=5)
            except KafkaTimeoutError:
                self.outage.failed("buffered records not acknowledged", self._unsent_summary())
                if self.outage.stopping():
                    raise StoppedDuringOutage(self._unsent_summary()) from None
                self.outage.wait()
                continue
            undone = [p for p in pending if not p[0].is_done]
            ended = {id(p) for p in pending if p[0].is_done}
            with self._lock:
                self._pending = [p for p in self._pending if id(p) not in ended]
                self._pending_bytes = sum(len(p[5]) for p in self._pending)
            failed = [p for p in pending if p[0].is_done and not p[0].succeeded()]
            self.sent += len(ended) - len(failed)
            if undone and not failed:
                continue  # sent before the flush yet still in flight: flush again
            if not failed:
                self.outage.ok()
                return
            reason = f"{len(failed)} records failed: {failed[0][0].exception!r}"[:300]
            try:
                self.outage.failed(reason, describe_unsent([p[1:4] for p in failed] + [
                    p[1:4] for p in self._pending_copy() if not p[0].succeeded()]))
            except OutageGaveUp:
                with self._lock:
                    self._pending = failed + self._pending
                    self._pending_bytes = sum(len(p[5]) for p in self._pending)
                raise
            self.outage.wait()
            for _, kind, call_id, seq, topic, value, key in failed:
                self._send(topic, value, key, (kind, call_id, seq))

    def _pending_copy(self) -> list[tuple]:
        with self._lock:
            return list(self._pending)

    def _unsent_summary(self, extra: list[tuple] = ()) -> str:
        with self._lock:
            items = [(k, c, s) for f, k, c, s, *_ in self._pending if not f.succeeded()] + list(extra)
        return describe_unsent(items)

    def unsent(self) -> str:
        return self._unsent_summary()

    def close(self, timeout: float = 10) -> None:
        """Close the producer; never raises (an error here must not hide the one that
        ended the run): records still unacknowledged are reported by `unsent()`."""
        producer = self._producer
        try:
            producer.close(timeout=0 if self.outage.down else timeout)
            return
        except Exception as e:  # noqa: BLE001
            log.debug("closing the Kafka producer: %r", e)
        # kafka-python's close() flushes first and, when that times out, raises and leaves
        # the producer open (its __del__ then tries again and prints a traceback at exit):
        # stop its sender thread and mark it closed by hand.
        try:
            sender = getattr(producer, "_sender", None)
            if sender is not None and sender.is_alive():
                sender.force_close()
                sender.join(2)
            producer._closed = True
        except Exception as e:  # noqa: BLE001
            log.debug("force-closing the Kafka producer: %r", e)


def describe_unsent(items: Sequence[tuple]) -> str:
    """(kind, call_id, seq) items -> 'not sent: call X: 12 call_chunk (seq 40-51); ...'."""
    if not items:
        return "nothing was left unsent"
    by_call: dict = {}
    for kind, call_id, seq in items:
        by_call.setdefault(call_id or "-", {}).setdefault(kind, []).append(seq)
    parts = []
    for call_id, kinds in by_call.items():
        descr = []
        for kind, seqs in kinds.items():
            nums = [q for q in seqs if q is not None]
            span = f" (seq {min(nums)}-{max(nums)})" if nums else ""
            descr.append(f"{len(seqs)} {kind}{span}")
        parts.append(f"call {call_id}: {', '.join(descr)}")
    return f"not sent: {len(items)} events of {len(by_call)} calls: " + "; ".join(parts)


def broker_unavailable(settings: Settings) -> BrokerUnavailable:
    return BrokerUnavailable(f"no Kafka broker answers at {settings.pipeline.kafka_bootstrap} "
                             "(start one with `callsense kafka-local start` or set CALLSENSE_KAFKA_BOOTSTRAP)")


def ensure_topics(settings: Settings) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

    names = sorted({settings.topic(t) for t in TOPIC_OF_KIND.values()})
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.pipeline.kafka_bootstrap.split(","), request_timeout_ms=15000,
                                 bootstrap_timeout_ms=10000)
    except KafkaTimeoutError:
        raise broker_unavailable(settings) from None
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, num_partitions=settings.pipeline.kafka_partitions, replication_factor=1,
                            topic_configs={"max.message.bytes": str(max(settings.pipeline.max_message_bytes * 2, 1_048_576))})
                   for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
        _wait_for_leaders(admin, names)
    finally:
        admin.close()


def _wait_for_leaders(admin, names: list[str], timeout: float = 30.0) -> None:
    """A consumer that subscribes before a new topic has leaders gets no partitions until
    its next metadata refresh; wait until every partition has a leader."""
    deadline = time.monotonic() + timeout
    while True:
        described = admin.describe_topics(names)
        ready = all(
            t.get("error_code", 0) == 0 and t.get("partitions")
            and all(p.get("leader", p.get("leader_id", -1)) >= 0 for p in t["partitions"])
            for t in described
        )
        if ready or time.monotonic() > deadline:
            return
        time.sleep(0.2)


class StageConsumer:
    """Runs one stage as a member of its consumer group until `stop` is set."""

    def __init__(self, settings: Settings, stage: Stage, publisher: KafkaPublisher, stop: threading.Event,
                 max_records: int = 32):
        self.settings = settings
        self.stage = stage
        self.publisher = publisher
        self.stop = stop
        self.max_records = max_records
        self.processed = 0
        self._first_offset: dict[tuple, int] = {}  # (tp, call_id) -> offset of its first chunk
        # What the stage depends on (database, ASR server): a worker waits it out without
        # giving up, since its inputs stay uncommitted in Kafka.
        self.dependency = Outage(f"{stage.name} stage: dependency", float("inf"), log, stop=stop)

    def _consumer(self):
        from kafka import KafkaConsumer

        return KafkaConsumer(
            *[self.settings.topic(t) for t in self.stage.inputs],
            bootstrap_servers=self.settings.pipeline.kafka_bootstrap.split(","),
            group_id=f"{self.settings.pipeline.topic_prefix}-{self.stage.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.pipeline.poll_timeout_ms, max_poll_records=self.max_records,
            max_partition_fetch_bytes=max(self.settings.pipeline.max_message_bytes * 2, 1_048_576),
            session_timeout_ms=10000, heartbeat_interval_ms=2000,
            max_poll_interval_ms=600_000, bootstrap_timeout_ms=10000,
            # Topics created while a worker runs are picked up within seconds, not minutes.
            metadata_max_age_ms=10_000,
        )

    def run(self) -> None:
        from kafka import OffsetAndMetadata
        from kafka.errors import KafkaError

        consumer = self._consumer()
        # Know every input topic's partitions before the first poll joins the group: a
        # leader that assigns from incomplete metadata hands out nothing.
        for topic in consumer.subscription() or ():
            deadline = time.monotonic() + 30
            while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline and not self.stop.is_set():
                time.sleep(0.2)
        backoff = 0.5
        # A stage with results in flight (a live call's recognizer stream) hands them over
        # between polls, so it polls more often.
        pending = getattr(self.stage, "pending", None)
        try:
            while not self.stop.is_set():
                try:
                    polled = consumer.poll(timeout_ms=200 if pending is None else 20)
                except KafkaError as e:
                    # A broker restart can surface through poll itself (the offset check after a
                    # rebalance refreshes metadata and meets a refused connection): wait it out
                    # like any outage; nothing was taken, so nothing is lost.
                    self.publisher.outage.failed(f"poll: {e.__class__.__name__}", "")
                    self.publisher.outage.wait()
                    continue
                if pending is not None:
                    self._publish_pending(pending)
                if not polled:
                    continue
                # All partitions' records in one stage call: a stage that batches work (the
                # transcribe stage packs utterances of many calls into one ASR pass) sees
                # everything that is waiting, not one partition's share.
                events = []
                for tp, records in polled.items():
                    for rec in records:
                        try:
                            events.append((tp, rec.offset, decode_event(rec.value)))
                        except Exception as e:  # not our format: dead-letter, keep going
                            key = rec.key.decode(errors="replace") if rec.key else None
                            events.append((tp, rec.offset, dead_letter(self.stage.name, None,
                                           f"undecodable message at {tp.topic}[{tp.partition}]@{rec.offset} (key {key}): {str(e)[:200]}")))
                if not self._process(events):
                    return  # stopped while a dependency was away: nothing committed
                commits = {}
                for tp, records in polled.items():
                    commit_at = self._commit_position(tp, records[-1].offset + 1)
                    if commit_at is not None:
                        commits[tp] = OffsetAndMetadata(commit_at, "", -1)
                if commits:
                    self._commit(consumer, commits)
        finally:
            consumer.close(autocommit=False)

    def _commit(self, consumer, commits) -> None:
        """Commit through a broker outage (retried with the publisher's outage state). A
        commit refused because the group rebalanced meanwhile is dropped: the records are
        delivered again, and the store's natural keys make that harmless."""
        from kafka.errors import CommitFailedError, KafkaError

        outage = self.publisher.outage
        while not self.stop.is_set():
            try:
                consumer.commit(commits, timeout_ms=5000)
                outage.ok()
                return
            except CommitFailedError as e:
                log.warning("%s: offsets not committed (%s); those records will be processed again",
                            self.stage.name, str(e).splitlines()[0][:200] if str(e) else "group rebalanced")
                return
            except KafkaError as e:
                outage.failed(f"commit: {e.__class__.__name__}", "offsets of processed records not committed "
                              "(their records will be processed again)")
                outage.wait()

    def _publish_pending(self, pending) -> None:
        try:
            ready = pending()
        except Exception as e:  # noqa: BLE001 - the stage owns its errors; the consumer goes on
            log.warning("%s: collecting results in flight failed: %s", self.stage.name, e)
            return
        if ready:
            self.publisher.publish(ready)
            self.publisher.flush()

    def _process(self, events: Sequence[tuple]) -> bool:
        """events: (partition, offset, event) in poll order. The stage's units of work
        (`stage_units`: one live utterance, one live chunk) are run one after the other and
        each unit's outputs are handed to the producer as soon as it is done, so the first
        utterance of a poll does not wait for the recognition of the others; everything is
        flushed once at the end, before the caller commits (at-least-once as before). A unit
        that fails with TransientError is retried alone (units already done are not run
        again: the segment stage's live state must see each chunk once). False: stopped
        while waiting for a dependency (nothing is committed then)."""
        from callsense.core.events import DeadLetter

        passthrough = [ev for _, _, ev in events if isinstance(ev, DeadLetter) and "dead-letters" not in self.stage.inputs]
        work = [ev for _, _, ev in events if not any(ev is p for p in passthrough)]
        for tp, off, ev in events:
            if getattr(ev, "kind", "") == "call_chunk" and (tp, ev.call_id) not in self._first_offset:
                self._first_offset[(tp, ev.call_id)] = off
        if passthrough:
            self.publisher.publish(passthrough)
        for unit in stage_units(self.stage, work) if work else ():
            while True:
                try:
                    outputs = run_safely(self.stage, unit)
                    self.dependency.ok()
                    break
                except TransientError as e:
                    # Logged when the dependency goes away and when it is back, not per
                    # retry; the inputs stay uncommitted, so waiting loses nothing.
                    self.dependency.failed(str(e))
                    if self.stop.is_set():
                        return False
                    self.dependency.wait()
            if outputs:
                self.publisher.publish(outputs)
        self.publisher.flush()
        self.processed += len(events)
        return True

    def _commit_position(self, tp, next_offset: int) -> int | None:
        open_calls = getattr(self.stage, "open_calls", None)
        if open_calls is None:
            return next_offset
        still_open = open_calls()
        for key in [k for k in self._first_offset if k[0] == tp and k[1] not in still_open]:
            del self._first_offset[key]
        pending = [off for (t, _), off in self._first_offset.items() if t == tp]
        return min(pending) if pending else next_offset


def run_worker(settings: Settings, stages: Sequence[Stage], stop: threading.Event) -> None:
    """All given stages in one process, one consumer thread each. The first error of a stage
    thread ends the run and is raised here; closing the producer never hides it."""
    ensure_topics(settings)
    publisher = KafkaPublisher(settings, stop=stop)
    threads = []
    consumers = [StageConsumer(settings, st, publisher, stop) for st in stages]
    errors: list[BaseException] = []

    def target(c: StageConsumer):
        try:
            c.run()
        except StoppedDuringOutage as e:
            log.warning("%s stopped while the broker was away; %s", c.stage.name, e)
        except BaseException as e:  # surfaced by the caller, not swallowed
            errors.append(e)
            stop.set()

    for c in consumers:
        t = threading.Thread(target=target, args=(c,), name=f"stage-{c.stage.name}", daemon=True)
        t.start()
        threads.append(t)
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        publisher.close()
    if errors:
        gave_up = [e for e in errors if isinstance(e, OutageGaveUp)]
        raise (gave_up or errors)[0]
