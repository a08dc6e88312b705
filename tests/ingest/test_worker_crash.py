"""A worker killed with SIGKILL mid-stream and restarted: every utterance of every call is
stored exactly once (at-least-once delivery + idempotent writes + live-call replay)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

import jiwer
from sqlalchemy import select
from sqlmodel import Session

from callsense.ingest.transports.kafka import ensure_topics
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore
from callsense.store.schema import Sentence, Utterance

from pipeline_support import assert_same_results, embedded_reference, wait_until


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(pipeline_env, repo_root, shared_audio, tmp_path):
    samples = repo_root / "samples"
    recorded = [samples / "billing-double-charge.mp3", samples / "late-delivery.mp3", samples / "router-setup.mp3",
                shared_audio / "stereo_diarization.wav"]
    expected = embedded_reference(tmp_path, recorded)
    ensure_topics(pipeline_env.settings)
    first = pipeline_env.start_worker()

    # A live call streams at real time while the recorded calls are produced.
    live = threading.Thread(target=lambda: pipeline_env.cli("stream-live", str(shared_audio / "jfk.flac"),
                                                            "--call-id", "live-crash", "--chunk-ms", "100", timeout=120))
    live.start()
    pipeline_env.cli("produce", *map(str, recorded))
    store = ResultStore(make_engine(pipeline_env.settings.resolved_database_url))

    def some_but_not_all():
        with Session(store.engine) as s:
            n = len(s.exec(select(Utterance.id)).all())
        return n >= 3
    wait_until(some_but_not_all, 180, "the first stored utterances", interval=0.2, on_timeout=pipeline_env.worker_log)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    with Session(store.engine) as s:
        stored_at_kill = len(s.exec(select(Utterance.id)).all())

    pipeline_env.start_worker()
    live.join(timeout=120)
    ids = [*expected, "live-crash"]
    wait_until(lambda: all((c := store.get_call(i)) is not None and c.status == "done" for i in ids), 300,
               "every call to finish after the restart", on_timeout=pipeline_env.worker_log)

    with Session(store.engine) as s:
        utts = s.exec(select(Utterance.call_id, Utterance.channel, Utterance.idx)).all()
        sents = s.exec(select(Sentence.call_id, Sentence.channel, Sentence.utterance_idx, Sentence.idx)).all()
    assert max(Counter(utts).values()) == 1 and max(Counter(sents).values()) == 1
    for call_id, rows in expected.items():
        call = store.get_call(call_id)
        assert sum(1 for u in utts if u[0] == call_id) == call.utterances_expected
        assert_same_results(store, call_id, rows)
    live_call = store.get_call("live-crash")
    assert live_call.utterances_expected >= 3
    assert live_call.utterances_expected == sum(1 for u in utts if u[0] == "live-crash")
    text = " ".join(s.text for s in store.sentences("live-crash")).lower()
    # The words, in order (the default engine, Moonshine, hears each short live utterance alone
    # and may miss a word: "as not" for "ask not").
    reference = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    assert jiwer.wer(reference, jiwer.RemovePunctuation()(text)) <= 0.15, text
    assert stored_at_kill < len(utts), "the kill came after everything was already stored"

    # A clean stop: SIGTERM ends the restarted worker promptly with status 0.
    second = pipeline_env.procs[-1]
    os.kill(second.pid, signal.SIGTERM)
    assert second.wait(timeout=30) == 0
