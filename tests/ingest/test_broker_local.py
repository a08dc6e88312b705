"""The local KRaft broker (callsense.ingest.broker.local) against a real kafka-python client."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from callsense.ingest.broker.local import LocalKafka

pytestmark = pytest.mark.kafka

KEYS = [f"call-{i}" for i in range(5)]


def _create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    """``count`` keyed messages, round-robin over KEYS; value ``key:seq`` with a per-key seq."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
    )
    try:
        futures = []
        for i in range(start, start + count):
            key = KEYS[i % len(KEYS)]
            value = f"{key}:{i // len(KEYS)}"
            futures.append(producer.send(topic, key=key.encode(), value=value.encode()))
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises if the broker refused it
    finally:
        producer.close(timeout=10)


def _consumer(bootstrap: str, topic: str, group: str) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


def _consume(consumer: KafkaConsumer, count: int, timeout_s: float = 60.0) -> list:
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def _committed_total(consumer: KafkaConsumer, topic: str, partitions: int = 2) -> int:
    return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions))


def _assert_keyed_order(records: list, per_key: int) -> None:
    by_key: dict[str, list[int]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for r in records:
        key, seq = r.value.decode().split(":")
        assert key == r.key.decode()
        by_key[key].append(int(seq))
        partition_of[key].add(r.partition)
    assert sorted(by_key) == KEYS
    for key, seqs in by_key.items():
        assert seqs == list(range(per_key)), f"{key} out of order: {seqs}"
        assert len(partition_of[key]) == 1, f"{key} spread over {partition_of[key]}"


def test_keyed_order_and_manual_commit(kafka_bootstrap: str) -> None:
    topic = "broker-local-order"
    _create_topic(kafka_bootstrap, topic, partitions=2)
    _produce(kafka_bootstrap, topic, 50)

    consumer = _consumer(kafka_bootstrap, topic, group="broker-local-order-g")
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1}
        records = _consume(consumer, 50)
        assert len(records) == 50
        _assert_keyed_order(records, per_key=10)
        assert {r.partition for r in records} == {0, 1}  # 5 keys over 2 partitions
        consumer.commit()
        assert _committed_total(consumer, topic) == 50
        assert consumer.poll(timeout_ms=500) == {}  # nothing more
    finally:
        consumer.close()


def test_restart_keeps_data_and_offsets(
    tmp_path: Path, kafka_jars: Path, pick_ports: Callable[[int], list[int]]
) -> None:
    port, controller_port = pick_ports(2)
    kafka = LocalKafka(home=tmp_path / "kafka", port=port, controller_port=controller_port,
                       jars=kafka_jars)  # fmt: skip
    topic, group = "broker-local-restart", "broker-local-restart-g"
    try:
        kafka.start(timeout=120)
        meta = (kafka.data_dir / "meta.properties").read_text()
        _create_topic(kafka.bootstrap, topic)
        _produce(kafka.bootstrap, topic, 25)
        consumer = _consumer(kafka.bootstrap, topic, group)
        try:
            assert len(_consume(consumer, 25)) == 25
            consumer.commit()
        finally:
            consumer.close()

        first_pid = kafka.status().pid
        assert kafka.stop() is True
        st = kafka.status()
        assert not st.running and not st.accepting and not kafka.pid_file.exists()
        assert kafka.stop() is False  # no-op when not running

        kafka.start(timeout=120)
        assert kafka.status().pid != first_pid
        assert (kafka.data_dir / "meta.properties").read_text() == meta  # not reformatted
        _produce(kafka.bootstrap, topic, 25, start=25)

        # The group resumes after its committed offsets: only the 25 new messages.
        consumer = _consumer(kafka.bootstrap, topic, group)
        try:
            assert _committed_total(consumer, topic) == 25
            later = _consume(consumer, 25)
            assert len(later) == 25
            assert all(int(r.value.decode().split(":")[1]) >= 5 for r in later)
            assert consumer.poll(timeout_ms=1000) == {}
        finally:
            consumer.close()

        # A new group reads everything, written before and after the restart, in key order.
        consumer = _consumer(kafka.bootstrap, topic, group + "-fresh")
        try:
            every = _consume(consumer, 50)
            assert len(every) == 50
            _assert_keyed_order(every, per_key=10)
        finally:
            consumer.close()
    finally:
        kafka.stop()
    assert kafka.status().running is False
