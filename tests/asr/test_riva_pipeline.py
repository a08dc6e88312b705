"""The pipeline with CALLSENSE_ASR_ENGINE=riva pointing at riva-serve transcribes the
shared audio with the same words as the embedded engine; a dead Riva server is a
transient failure (the transport retries the event), never a dead letter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from callsense.core.settings import Settings  # noqa: E402
from callsense.core.errors import TransientError  # noqa: E402
from callsense.ingest.pipeline import PipelineResources, build_stage  # noqa: E402
from callsense.ingest.sources import expand_inputs, recorded_call  # noqa: E402
from callsense.ingest.stage import run_safely  # noqa: E402
from callsense.ingest.transports.inprocess import InProcessTransport  # noqa: E402
from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR  # noqa: E402


def transcribe_all(settings: Settings, files: list[Path]) -> dict[tuple, tuple[str, str]]:
    """(source, channel, utterance) -> (text, asr model) through the segment and transcribe stages."""
    res = PipelineResources(settings)
    transport = InProcessTransport([build_stage("segment", res), build_stage("transcribe", res)])
    for f in files:
        transport.publish([recorded_call(f, res.blobs)])
    transport.drain()
    dead = [e for e in transport.unrouted if e.kind == "dead_letter"]
    assert not dead, dead
    return {(e.call_id, e.channel, e.index): (e.text, e.asr_model) for e in transport.unrouted if e.kind == "transcribed"}


def test_riva_engine_in_the_pipeline_gives_the_embedded_words(riva_settings, shared_audio, tmp_path, normalize):
    files = expand_inputs([shared_audio])
    embedded = transcribe_all(Settings(data_dir=tmp_path / "whisper", asr_engine="whisper"), files)
    riva = transcribe_all(riva_settings.model_copy(update={"data_dir": tmp_path / "riva", "asr_engine": "riva"}), files)
    assert len(embedded) >= len(files)
    assert riva.keys() == embedded.keys()
    for key in embedded:
        assert normalize(riva[key][0]) == normalize(embedded[key][0]), key
    assert {m for _, m in riva.values()} == {"riva:callsense-whisper-en-US"}
    assert all(m.startswith("whisper:") for _, m in embedded.values())


def test_dead_riva_server_is_retried_not_dead_lettered(pick_ports, shared_audio, tmp_path):
    settings = Settings(data_dir=tmp_path, asr_engine="riva", riva_url=f"127.0.0.1:{pick_ports(1)[0]}",
                        riva_retries=1, riva_retry_backoff_s=0.05)
    res = PipelineResources(settings)
    batches = [e for e in build_stage("segment", res).handle_batch([recorded_call(shared_audio / "spk1_snt1.wav", res.blobs)])
               if e.kind == "utterance_batch"]
    transcribe = build_stage("transcribe", res)
    with pytest.raises(TransientError, match=settings.riva.url):
        run_safely(transcribe, batches)  # the Kafka transport catches this, backs off and retries the same event


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "manifest.json").is_file(),
                    reason=f"`callsense process` needs the sentiment model, not built yet ({DEFAULT_MODEL_DIR})")
def test_callsense_process_with_riva_asr_and_sentiment(riva_url, shared_audio, tmp_path):
    from callsense.ingest.sources import call_id_for

    # Both TR-4910 steps through Riva: speech-to-text and sentence classification.
    env = {**os.environ, "CALLSENSE_DATA_DIR": str(tmp_path), "CALLSENSE_ASR_ENGINE": "riva", "CALLSENSE_RIVA_URL": riva_url,
           "CALLSENSE_SENTIMENT_BACKEND": "riva", "COLUMNS": "200"}
    env.pop("CALLSENSE_DATABASE_URL", None)
    clip = shared_audio / "spk2_snt2.wav"
    done = subprocess.run([sys.executable, "-m", "callsense", "process", str(clip)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([sys.executable, "-m", "callsense", "show", call_id_for(clip, clip.read_bytes())],
                           env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.lower().splitlines() if "what joy there is in living" in x)
    assert "positive" in line
    # A Riva server that stays down: retried, then one line naming it and what was not stored.
    dead = {**env, "CALLSENSE_RIVA_URL": "127.0.0.1:9", "CALLSENSE_RIVA_RETRIES": "0", "CALLSENSE_OUTAGE_GIVE_UP_S": "2"}
    failed = subprocess.run([sys.executable, "-m", "callsense", "process", str(shared_audio / "spk2_snt2.wav")],
                            env=dead, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 75 and "127.0.0.1:9" in failed.stderr and "spk2_snt2.wav" in failed.stderr
    assert "Traceback" not in failed.stderr
