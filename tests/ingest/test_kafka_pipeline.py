"""The same stages on a real Kafka broker: recorded calls, a live call, and bad input."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer

from callsense.core.events import CallChunk, decode_event
from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

from pipeline_support import all_done, assert_same_results, embedded_reference, result_store, wait_until


def test_recorded_calls_through_kafka_equalembedded_reference(pipeline_env, repo_root, shared_audio, tmp_path):
    files = [shared_audio / "stereo_diarization.wav", repo_root / "samples" / "late-delivery.mp3"]
    expected = embedded_reference(tmp_path, files)
    pipeline_env.start_worker()
    out = pipeline_env.cli("produce", *map(str, files), "--agent", "ag-1")
    assert out.stdout.count("published") == 2
    store = result_store(pipeline_env)
    wait_until(lambda: all_done(store, expected), 240, "both calls to finish", on_timeout=pipeline_env.worker_log)
    for call_id, rows in expected.items():
        assert_same_results(store, call_id, rows)
        assert store.get_call(call_id).agent_id == "ag-1"
    late = [c for c in expected if c.startswith("late-delivery")][0]
    by_speaker = store.summary(late).by_speaker
    assert by_speaker["customer"].get("negative", 0) >= 2  # "terrible service", "very disappointed"


def test_live_call_through_kafka_stores_sentences_while_streaming(pipeline_env, repo_root):
    pipeline_env.start_worker()
    # The call streams once the worker has its models (on a loaded machine that takes a
    # while), so "while streaming" is about the pipeline, not the worker's start.
    wait_until(lambda: "worker running" in pipeline_env.worker_log(), 240, "the worker to start",
               on_timeout=pipeline_env.worker_log)
    sample = repo_root / "samples" / "billing-double-charge.mp3"
    import subprocess
    import sys

    streamer = subprocess.Popen([sys.executable, "-m", "callsense", "stream-live", str(sample), "--call-id", "live-1",
                                 "--agent", "ag-2", "--chunk-ms", "200"], env=pipeline_env.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        store = result_store(pipeline_env)
        # A sentence is stored while the call is still being streamed (45 s of audio).
        wait_until(lambda: store.sentences("live-1") or streamer.poll() is not None, 120, "the first live sentence",
                   on_timeout=pipeline_env.worker_log)
        assert streamer.poll() is None, "the stream ended before any sentence was stored"
        call = store.get_call("live-1")
        assert call.mode == "live" and call.status == "processing"
        assert streamer.wait(timeout=90) == 0
        wait_until(lambda: all_done(store, ["live-1"]), 60, "the live call to finish", on_timeout=pipeline_env.worker_log)
    finally:
        if streamer.poll() is None:
            streamer.kill()
            streamer.wait()
    rows = store.sentences("live-1")
    assert {r.speaker for r in rows} == {"agent", "customer"}
    # The customer's first turn (Moonshine, hearing it alone, writes "son'scription" for "subscription").
    assert any("charged twice" in r.text.lower() and r.speaker == "customer" for r in rows)
    assert all(r.ended_at is not None and r.stored_at >= r.ended_at - 0.5 for r in rows)


def test_bad_input_is_dead_lettered_and_the_pipeline_keeps_going(pipeline_env, repo_root, tmp_path):
    settings = pipeline_env.settings
    ensure_topics(settings)
    pipeline_env.start_worker()
    bad = {"empty.wav": b"", "notes.mp3": b"meeting notes, not audio\n" * 100, "half.flac": b"fLaC" + bytes(3000)}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    good = repo_root / "samples" / "router-setup.mp3"
    produced = pipeline_env.cli("produce", *(str(tmp_path / n) for n in bad), str(good), check=False)
    assert produced.returncode == 3, produced.stderr  # 3: some inputs were refused (dead letters), the rest went on
    # A message that is not an event at all, straight onto the input topic.
    raw = KafkaProducer(bootstrap_servers=settings.pipeline.kafka_bootstrap)
    raw.send(settings.topic("calls"), key=b"garbage", value=b"\x00\x01 definitely not json")
    raw.flush()
    raw.close()
    # An event larger than the limit is refused at the producer and dead-lettered instead.
    pub = KafkaPublisher(settings)
    pub.publish([CallChunk(call_id="huge", seq=0, sample_rate=16000, channels=1, pcm=b"\0" * (settings.pipeline.max_message_bytes + 10),
                           stream_started_at=time.time())])
    # A live call whose chunks 5..29 never arrive (window 20).
    from callsense.ingest.sources import live_chunks

    chunks = list(live_chunks(repo_root / "samples" / "router-setup.mp3", call_id="gappy", realtime=False))
    pub.publish(chunks[:5] + chunks[30:])
    pub.flush()
    pub.close()

    store = result_store(pipeline_env)
    wait_until(lambda: len(store.dead_letters()) >= 6, 120, "six dead letters", on_timeout=pipeline_env.worker_log)
    reasons = " | ".join(d.reason for d in store.dead_letters())
    for needle in ("empty file", "not an audio file", "undecodable message", "oversized call_chunk", "never arrived"):
        assert needle in reasons, reasons
    wait_until(lambda: any(c.source_name == good.name and c.status == "done" for c in store.list_calls()), 180,
               "the good call after the bad ones", on_timeout=pipeline_env.worker_log)
    wait_until(lambda: (c := store.get_call("gappy")) is not None and c.status == "done", 120, "the gappy live call")
    # The same records are on the dead-letter topic for other consumers.
    consumer = KafkaConsumer(settings.topic("dead-letters"), bootstrap_servers=settings.pipeline.kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    on_topic = [decode_event(m.value) for m in consumer]
    consumer.close()
    assert len(on_topic) >= 6 and all(d.kind == "dead_letter" for d in on_topic)
    assert pipeline_env.procs[0].poll() is None, "the worker died on bad input"
    assert "Traceback" not in pipeline_env.worker_log()
