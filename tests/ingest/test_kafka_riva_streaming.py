"""Live calls streamed natively to Riva (CALLSENSE_LIVE_ASR=riva-streaming) through the whole
pipeline on the real Kafka broker: `callsense worker` processes (all stages, so the
live-transcribe stage too), `callsense stream-live`, a riva-serve; every sentence stored
once with its sentiment, also when the worker is killed mid-call and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from sqlalchemy import select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from callsense.core.settings import Settings  # noqa: E402
from callsense.store.schema import Sentence, Utterance  # noqa: E402

from pipeline_support import all_done, result_store, wait_until  # noqa: E402

STREAMING_MODEL = "riva:callsense-moonshine-en-US-streaming"  # riva-serve's default engine


@pytest.fixture(scope="module")
def riva_address():
    from callsense.serve.riva.server import RivaServer

    server = RivaServer(Settings(), host="127.0.0.1", port=0, workers=16).start()
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture
def riva_pipeline(pipeline_env, riva_address):
    pipeline_env.env.update({"CALLSENSE_ASR_ENGINE": "riva", "CALLSENSE_LIVE_ASR": "riva-streaming",
                             "CALLSENSE_RIVA_URL": riva_address, "CALLSENSE_RIVA_TIMEOUT_S": "120"})
    return pipeline_env


def stored_keys(store, call_id: str) -> tuple[list, list]:
    with Session(store.engine) as s:
        utts = s.exec(select(Utterance.channel, Utterance.idx).where(Utterance.call_id == call_id)).all()
        sents = s.exec(select(Sentence.channel, Sentence.utterance_idx, Sentence.idx).where(Sentence.call_id == call_id)).all()
    return utts, sents


def test_stereo_live_call_is_stored_once_with_speakers_and_sentiment(riva_pipeline, repo_root):
    worker = riva_pipeline.start_worker()  # CALLSENSE_WORKER_STAGES defaults to all: live-transcribe included
    riva_pipeline.cli("stream-live", str(repo_root / "samples" / "router-setup.mp3"), "--call-id", "riva-live",
                      "--agent", "ag-7", "--no-realtime")
    store = result_store(riva_pipeline)
    wait_until(lambda: all_done(store, ["riva-live"]), 240, "the live call to be done", on_timeout=riva_pipeline.worker_log)
    call = store.get_call("riva-live")
    assert call.mode == "live" and call.speakers == "agent,customer" and call.agent_id == "ag-7"
    utts, sents = stored_keys(store, "riva-live")
    assert max(Counter(utts).values()) == 1 and max(Counter(sents).values()) == 1
    assert len(utts) == call.utterances_expected >= 6
    assert abs(call.duration_s - 40.0) < 0.5
    rows = store.sentences("riva-live")
    assert {r.speaker for r in rows} == {"agent", "customer"}
    assert {r.asr_model for r in rows} == {STREAMING_MODEL}
    assert all(r.sentiment in ("negative", "neutral", "positive") and r.ended_at is not None for r in rows)
    text = " ".join(r.text.lower() for r in rows)
    assert "guest network" in text and "router" in text
    customer = " ".join(r.text.lower() for r in rows if r.speaker == "customer")
    assert "guest network" in customer  # channel 1's words under channel 1's speaker
    assert "works perfectly" in customer
    assert {"neutral", "positive"} <= {r.sentiment for r in rows}  # scored per sentence, not one label for all
    assert worker.poll() is None and "Traceback" not in riva_pipeline.worker_log()


def test_worker_killed_mid_call_replays_it_into_a_new_stream_exactly_once(riva_pipeline, shared_audio):
    first = riva_pipeline.start_worker()
    streamer = subprocess.Popen([sys.executable, "-m", "callsense", "stream-live", str(shared_audio / "jfk.flac"),
                                 "--call-id", "riva-crash"], env=riva_pipeline.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = result_store(riva_pipeline)
    try:
        # A sentence is stored while the call streams at real time; then the worker dies.
        wait_until(lambda: store.sentences("riva-crash"), 60, "the first live sentence", interval=0.2,
                   on_timeout=riva_pipeline.worker_log)
        assert streamer.poll() is None, "the call ended before any sentence was stored"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        riva_pipeline.start_worker()
        assert streamer.wait(timeout=60) == 0
        wait_until(lambda: all_done(store, ["riva-crash"]), 180, "the call to be done after the restart",
                   on_timeout=riva_pipeline.worker_log)
    finally:
        if streamer.poll() is None:
            streamer.kill()
            streamer.wait()
    call = store.get_call("riva-crash")
    utts, sents = stored_keys(store, "riva-crash")
    assert max(Counter(utts).values()) == 1 and max(Counter(sents).values()) == 1
    assert len(utts) == call.utterances_expected >= 2
    text = " ".join(r.text for r in store.sentences("riva-crash")).lower().replace(",", "")
    assert "ask what you can do for your country" in text
