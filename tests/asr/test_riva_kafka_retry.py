"""A Kafka worker whose Riva server is down keeps the event and retries with backoff; once
the server comes up the same call is transcribed, with nothing dead-lettered. Real broker
(the session's local Kafka), real worker threads, real riva-serve started late on the
port the worker was told about."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from callsense.core.settings import Settings  # noqa: E402
from callsense.core.events import decode_event  # noqa: E402
from callsense.ingest.pipeline import PipelineResources, build_stage  # noqa: E402
from callsense.ingest.sources import recorded_call  # noqa: E402
from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics, run_worker  # noqa: E402


@pytest.mark.kafka
def test_worker_retries_until_riva_is_back(kafka_bootstrap, pick_ports, shared_audio, tmp_path, normalize, caplog):
    from kafka import KafkaConsumer

    from callsense.serve.riva.server import RivaServer

    port = pick_ports(1)[0]
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"riva{uuid.uuid4().hex[:8]}", kafka_partitions=1,
                        data_dir=tmp_path, asr_engine="riva", riva_url=f"127.0.0.1:{port}", riva_retries=0)
    ensure_topics(settings)
    res = PipelineResources(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def work():
        try:
            run_worker(settings, [build_stage("segment", res), build_stage("transcribe", res)], stop)
        except BaseException as e:  # surfaced below
            errors.append(e)

    def failed_tries() -> list[str]:
        """The worker's log of failed tries of the transcribe stage: "unreachable ... retrying
        with backoff" once (a warning), then "still unreachable (attempt N)" (debug)."""
        return [m for m in (r.getMessage() for r in list(caplog.records))
                if m.startswith("transcribe stage") and "unreachable" in m and "UNAVAILABLE" in m]

    caplog.set_level(logging.DEBUG, logger="callsense.kafka")
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    server = None
    consumer = KafkaConsumer(settings.topic("transcripts"), settings.topic("dead-letters"), bootstrap_servers=kafka_bootstrap,
                             group_id=f"check-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest", consumer_timeout_ms=500)
    try:
        publisher = KafkaPublisher(settings)
        call = recorded_call(shared_audio / "spk2_snt4.wav", res.blobs)
        publisher.publish([call])
        publisher.flush()
        publisher.close()
        # The transcribe stage meets the dead server, backs off, and fails again: the worker's
        # own warnings say so (two failed tries of the same batch, kept, not committed).
        deadline = time.monotonic() + 120
        while len(failed_tries()) < 2 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
        assert len(failed_tries()) >= 2, caplog.text[-3000:]
        assert not list(consumer), "nothing may come out while Riva is down"
        assert worker.is_alive() and not errors
        server = RivaServer(Settings(), host="127.0.0.1", port=port, workers=4).start()
        events, deadline = [], time.monotonic() + 120
        while not any(e.kind == "transcribed" for e in events) and time.monotonic() < deadline:
            events += [decode_event(m.value) for m in consumer]
        assert [e.kind for e in events if e.kind == "dead_letter"] == []
        transcribed = [e for e in events if e.kind == "transcribed" and e.call_id == call.call_id]
        assert transcribed and transcribed[0].asr_model == "riva:server-default"  # the server was down at start-up
        assert normalize(" ".join(e.text for e in transcribed)).startswith("mend the coat before you go out")
    finally:
        stop.set()
        worker.join(timeout=30)
        consumer.close()
        if server is not None:
            server.stop()
    assert not errors, errors
