"""Outages are survived, not crashed through (issue 11 §2): a broker stopped mid-stream under
a worker and `stream-live`, a database stopped under `callsense process`; and when the
outage outlasts the give-up setting, one clear line and exit status 75, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import select
from sqlmodel import Session

from callsense.store.db import make_engine
from callsense.store.repository import ResultStore
from callsense.store.schema import Sentence, Utterance

from outage_support import StoppablePostgres, stoppable_kafka, tracebacks
from pipeline_support import wait_until
from process_support import stop_process

EXIT_OUTAGE = 75


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {**os.environ, "CALLSENSE_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}", "CALLSENSE_DATA_DIR": str(tmp_path / "data"),
           "CALLSENSE_KAFKA_PARTITIONS": "2", "COLUMNS": "200"}
    env.pop("CALLSENSE_DATABASE_URL", None)
    env.update(extra)
    return env


def _start(args, env, log_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "callsense", *args], env=env, stdout=open(log_path, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _messages(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
        return sum(ends.values())
    finally:
        consumer.close()


def _count(store: ResultStore, model) -> int:
    with Session(store.engine) as s:
        return len(s.exec(select(model.id)).all())


@pytest.fixture
def broker(tmp_path):
    kafka = stoppable_kafka(tmp_path / "kafka")
    kafka.start(timeout=120)
    yield kafka
    kafka.stop()


@pytest.fixture
def postgres():
    pg = StoppablePostgres()
    yield pg
    pg.close()


def test_worker_and_stream_live_survive_a_broker_outage(broker, repo_root, tmp_path):
    env = _env(tmp_path, CALLSENSE_KAFKA_BOOTSTRAP=broker.bootstrap)
    procs = []
    try:
        worker = _start(["worker"], env, tmp_path / "worker.log")
        procs.append(worker)
        live = _start(["stream-live", str(repo_root / "samples" / "router-setup.mp3"), "--call-id", "live-outage"],
                      env, tmp_path / "live.log")
        procs.append(live)
        produced = subprocess.run([sys.executable, "-m", "callsense", "produce", str(repo_root / "samples" / "late-delivery.mp3"),
                                   str(repo_root / "samples" / "stereo_diarization.wav")], env=env, capture_output=True,
                                  text=True, timeout=180, check=True)
        ids = [line.split("as call ")[1].strip() for line in produced.stdout.splitlines() if "as call " in line]
        assert len(ids) == 2, produced.stdout
        store = ResultStore(make_engine(f"sqlite:///{tmp_path / 'data' / 'callsense.db'}"))
        wait_until(lambda: (tmp_path / "data" / "callsense.db").exists() and _count(store, Utterance) >= 1, 300,
                   "the first stored utterance", on_timeout=lambda: (tmp_path / "worker.log").read_text()[-3000:])
        assert live.poll() is None, "stream-live ended before the outage"

        broker.stop()
        time.sleep(20)  # the outage: held open for its duration
        broker.start(timeout=120)

        assert live.wait(timeout=300) == 0, (tmp_path / "live.log").read_text()
        ids.append("live-outage")
        wait_until(lambda: all((c := store.get_call(i)) is not None and c.status == "done" for i in ids), 600,
                   "every call to be stored after the outage", on_timeout=lambda: (tmp_path / "worker.log").read_text()[-3000:])
        with Session(store.engine) as s:
            utts = s.exec(select(Utterance.call_id, Utterance.channel, Utterance.idx)).all()
            sents = s.exec(select(Sentence.call_id, Sentence.channel, Sentence.utterance_idx, Sentence.idx)).all()
        assert max(Counter(utts).values()) == 1 and max(Counter(sents).values()) == 1
        for call_id in ids:
            assert sum(1 for u in utts if u[0] == call_id) == store.get_call(call_id).utterances_expected
        assert "cable" in " ".join(s.text for s in store.sentences("live-outage")).lower() or \
            len(store.sentences("live-outage")) >= 3

        stop_process(worker)
        assert worker.returncode == 0
        worker_log = (tmp_path / "worker.log").read_text(errors="replace")
        live_log = (tmp_path / "live.log").read_text(errors="replace")
        assert tracebacks(worker_log) == 0 and tracebacks(live_log) == 0, worker_log + live_log
        # One line when the broker went away and one when it came back, not one per retry. A
        # process notices the outage only if it had something to send or commit meanwhile (a
        # worker that had caught up, or stream-live between flushes, may not), so the count
        # may be 0; every line saying it went away has its line saying it came back.
        for log in (worker_log, live_log):
            assert log.count("unreachable") <= 4, log
            assert log.count("back after") == log.count("unreachable"), log
    finally:
        for p in procs:
            stop_process(p)


def test_stream_live_gives_up_with_one_line_naming_the_unsent_chunks(broker, shared_audio, tmp_path):
    env = _env(tmp_path, CALLSENSE_KAFKA_BOOTSTRAP=broker.bootstrap, CALLSENSE_KAFKA_OUTAGE_GIVE_UP_S="5")
    live = _start(["stream-live", str(shared_audio / "jfk.flac"), "--call-id", "live-lost"], env, tmp_path / "live.log")
    try:
        # Some chunks go out, then the broker goes away for good.
        wait_until(lambda: _messages(broker.bootstrap, env["CALLSENSE_TOPIC_PREFIX"] + ".calls") >= 10, 120,
                   "the first chunks on the broker", interval=0.2)
        broker.stop()
        assert live.wait(timeout=120) == EXIT_OUTAGE
    finally:
        stop_process(live)
    out = (tmp_path / "live.log").read_text(errors="replace")
    assert tracebacks(out) == 0, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "gave up" in out and "not sent" in out and "call_chunk" in out and "live-lost was not closed" in out, out


def test_process_waits_out_a_database_outage_and_stores_everything(postgres, repo_root, tmp_path):
    files = [repo_root / "samples" / n for n in ("stereo_diarization.wav", "router-setup.mp3", "late-delivery.mp3")]
    env = _env(tmp_path, CALLSENSE_DATABASE_URL=postgres.url)
    proc = _start(["process", *map(str, files)], env, tmp_path / "process.log")
    try:
        store = ResultStore(make_engine(postgres.url))
        wait_until(lambda: _count(store, Utterance) >= 1, 300, "the first stored call",
                   on_timeout=lambda: (tmp_path / "process.log").read_text()[-3000:])
        store.engine.dispose()
        postgres.stop()
        time.sleep(15)  # the outage
        postgres.start()
        assert proc.wait(timeout=600) == 0, (tmp_path / "process.log").read_text()
    finally:
        stop_process(proc)
    out = (tmp_path / "process.log").read_text(errors="replace")
    assert tracebacks(out) == 0, out
    with Session(store.engine) as s:
        names = [c for c in s.exec(select(Utterance.call_id)).all()]
    from callsense.store.schema import Call
    with Session(store.engine) as s:
        calls = s.exec(select(Call.source_name, Call.status)).all()
    assert sorted(calls) == sorted((f.name, "done") for f in files), (calls, out)
    assert names


def test_process_gives_up_with_one_line_naming_what_was_not_stored(postgres, repo_root, tmp_path):
    files = [repo_root / "samples" / n for n in ("stereo_diarization.wav", "router-setup.mp3")]
    env = _env(tmp_path, CALLSENSE_DATABASE_URL=postgres.url, CALLSENSE_OUTAGE_GIVE_UP_S="5")
    postgres.stop()  # away from the start, and for longer than the give-up setting
    proc = _start(["process", *map(str, files)], env, tmp_path / "process.log")
    try:
        assert proc.wait(timeout=300) == EXIT_OUTAGE, (tmp_path / "process.log").read_text()
    finally:
        stop_process(proc)
    out = (tmp_path / "process.log").read_text(errors="replace")
    assert tracebacks(out) == 0, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "gave up" in errors[0] and "not stored" in errors[0] and "router-setup.mp3" in errors[0], out
