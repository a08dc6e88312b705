"""Live chunks with absurd formats are dead letters, never calls stored as done."""

import time

import pytest

from callsense.core.events import CallChunk, DeadLetter
from callsense.core.settings import Settings
from callsense.ingest.stage import run_safely
from callsense.ingest.stages.segment import CallSegmenter
from callsense.store.blobs import BlobStore


class NoVad:  # the refusal comes before any audio reaches the VAD
    pass


@pytest.mark.parametrize("fmt", [dict(channels=20000, sample_rate=16000), dict(channels=1, sample_rate=10**9),
                                 dict(channels=0, sample_rate=8000)])
def test_absurd_live_format_is_a_dead_letter(tmp_path, fmt):
    settings = Settings(data_dir=tmp_path)
    seg = CallSegmenter(settings, BlobStore(tmp_path / "blobs", settings.pipeline.inline_audio_max_bytes), vad=NoVad())
    chunks = [CallChunk(call_id="bad", seq=i, pcm=bytes(320), final=i == 2, stream_started_at=time.time(), **fmt)
              for i in range(3)]
    out = run_safely(seg, chunks)
    letters = [e for e in out if isinstance(e, DeadLetter)]
    assert len(letters) == 1 and letters[0].call_id == "bad" and letters[0].fatal
    assert "bad stream format" in letters[0].reason and "internal" not in letters[0].reason
    assert [e for e in out if not isinstance(e, DeadLetter)] == []
    assert seg.open_calls() == set()
