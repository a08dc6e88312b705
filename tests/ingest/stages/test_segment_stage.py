"""The segment stage on real audio: recorded calls, live chunks, reordering, gaps, bad input."""

import time

import numpy as np
import pytest

from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore
from callsense.audio.pcm import s16le_to_float
from callsense.core.events import CallChunk, CallOpened, CallRecorded, CallSegmented, DeadLetter, UtteranceBatch, decode_event, encode_event
from callsense.ingest.stages.segment import CallSegmenter
from callsense.ingest.sources import live_chunks, recorded_call
from callsense.ingest.stage import run_safely


@pytest.fixture
def segmenter(tmp_path):
    settings = Settings(data_dir=tmp_path, live_min_silence_ms=500)
    return CallSegmenter(settings, BlobStore(tmp_path / "blobs", settings.pipeline.inline_audio_max_bytes))


def _utts(events):
    return [(b.channel, u.index, round(u.start, 2), round(u.end, 2)) for b in events if isinstance(b, UtteranceBatch) for u in b.utterances]


def test_recorded_stereo_call(segmenter, shared_audio):
    ev = recorded_call(shared_audio / "stereo_diarization.wav", segmenter.blobs, agent_id="a1")
    out = segmenter.handle_batch([decode_event(encode_event(ev))])
    opened = [e for e in out if isinstance(e, CallOpened)][0]
    assert opened.speakers == ["agent", "customer"] and opened.agent_id == "a1"
    done = [e for e in out if isinstance(e, CallSegmented)][0]
    assert done.utterances_per_channel == {0: 1, 1: 1}
    batch = [e for e in out if isinstance(e, UtteranceBatch) and e.channel == 1][0]
    audio = s16le_to_float(segmenter.blobs.get(batch.audio))
    assert abs(audio.size / 16000 - (batch.utterances[0].end - batch.utterances[0].start)) < 0.01


def test_recorded_packing_keeps_every_utterance(segmenter, shared_audio):
    segmenter.settings.pipeline.asr_window_s = 5.0  # force several windows
    ev = recorded_call(shared_audio / "jfk.flac", segmenter.blobs)
    out = segmenter.handle_batch([ev])
    batches = [e for e in out if isinstance(e, UtteranceBatch)]
    assert len(batches) >= 2
    assert [u.index for b in batches for u in b.utterances] == [0, 1, 2, 3]
    assert out[0].speakers == ["agent"] or out[0].channels == 1  # one voice in stereo -> one speaker


def _live(path, call_id, **kw):
    return list(live_chunks(path, call_id=call_id, realtime=False, **kw))


def test_live_equals_recorded(segmenter, shared_audio):
    path = shared_audio / "stereo_diarization.wav"
    rec = _utts(segmenter.handle_batch([recorded_call(path, segmenter.blobs)]))
    live = []
    for ch in _live(path, "L1"):
        live += segmenter.handle_batch([ch])
    assert segmenter.open_calls() == set()
    live_utts, rec = sorted(_utts(live)), sorted(rec)
    assert [(c, i) for c, i, *_ in live_utts] == [(c, i) for c, i, *_ in rec]
    for a, b in zip(live_utts, rec):
        assert abs(a[2] - b[2]) < 0.05 and abs(a[3] - b[3]) < 0.25
    assert isinstance(live[-1], CallSegmented)


def test_live_telephony_mulaw_8k(segmenter, shared_audio):
    out = []
    for ch in _live(shared_audio / "jfk.flac", "T1", encoding="mulaw", sample_rate=8000):
        out += segmenter.handle_batch([ch])
    assert len(_utts(out)) == 4


def test_live_out_of_order_within_window_is_reordered(segmenter, shared_audio):
    chunks = _live(shared_audio / "jfk.flac", "R1")
    in_order = []
    for ch in chunks:
        in_order += segmenter.handle_batch([ch])
    shuffled = [c.model_copy(update={"call_id": "R2"}) for c in chunks]
    for i in range(0, len(shuffled) - 3, 4):
        shuffled[i], shuffled[i + 2] = shuffled[i + 2], shuffled[i]
    shuffled.insert(10, shuffled[5])  # a redelivered duplicate
    out = []
    for ch in shuffled:
        out += segmenter.handle_batch([ch])
    assert _utts(out) == _utts(in_order)
    assert not [e for e in out if isinstance(e, DeadLetter)]


def test_live_gap_beyond_window_is_dead_lettered_and_call_goes_on(segmenter, shared_audio):
    chunks = _live(shared_audio / "jfk.flac", "G1")
    segmenter.settings.pipeline.live_reorder_window = 5
    out = []
    for ch in chunks[:20] + chunks[40:]:  # 2 s lost
        out += segmenter.handle_batch([ch])
    dead = [e for e in out if isinstance(e, DeadLetter)]
    assert len(dead) == 1 and "20..39" in dead[0].reason and not dead[0].fatal
    assert isinstance(out[-1], CallSegmented) and segmenter.open_calls() == set()


def test_bad_recording_becomes_one_dead_letter(segmenter, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + bytes(5000))
    # `recorded_call` refuses it before it is stored (tests/ingest/test_cli_inputs.py); an event
    # that names such audio anyway (another producer) is still one dead letter at the stage.
    ev = CallRecorded(call_id="bad", source_name="bad.mp3", audio=segmenter.blobs.put(bad.read_bytes(), keep=True))
    out = run_safely(segmenter, [ev])
    assert len(out) == 1 and isinstance(out[0], DeadLetter) and out[0].call_id == ev.call_id


def test_live_chunk_with_bad_format_is_dead_lettered(segmenter):
    ch = CallChunk(call_id="X", seq=0, sample_rate=100, channels=1, pcm=b"\0\0" * 10, stream_started_at=time.time())
    out = run_safely(segmenter, [ch])
    assert isinstance(out[0], DeadLetter) and "bad stream format" in out[0].reason


def test_large_audio_goes_by_claim_check(tmp_path):
    blobs = BlobStore(tmp_path, inline_max_bytes=1000)
    small, big = blobs.put(b"x" * 10), blobs.put(np.arange(5000, dtype=np.int16).tobytes())
    assert small.inline and big.blob and not big.inline
    assert blobs.get(big) == np.arange(5000, dtype=np.int16).tobytes()
    assert len(encode_event(UtteranceBatch(call_id="c", channel=0, speaker="a", utterances=[], audio=big))) < 400
