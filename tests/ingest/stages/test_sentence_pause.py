"""Live calls: an utterance closed at a short pause where its words so far end a sentence
(live_sentence_pause_ms), so the sentence need not wait for the rest of the utterance. The
decision depends on the audio alone, so a replayed call is cut the same way."""

from __future__ import annotations

from callsense.asr.base import RecognizedSegment
from callsense.core.events import UtteranceBatch
from callsense.core.settings import Settings
from callsense.ingest.sources import live_chunks
from callsense.ingest.stages.segment import CallSegmenter
from callsense.store.blobs import BlobStore


class FixedTextEngine:
    fixed_window_s = None
    model_id = "fixed"

    def __init__(self, text: str):
        self.text, self.calls = text, 0

    def transcribe_live(self, audio):
        self.calls += 1
        yield RecognizedSegment(text=self.text, start=0.0, end=audio.size / 16000)


def spans(tmp_path, path, engine, pause_ms: int):
    settings = Settings(data_dir=tmp_path, live_interim_ms=0, live_sentence_pause_ms=pause_ms)
    stage = CallSegmenter(settings, BlobStore(tmp_path / "blobs", settings.pipeline.inline_audio_max_bytes),
                          interim_engine=lambda: engine)
    out = [e for ch in live_chunks(path, call_id="c1", realtime=False) for e in stage.handle_batch([ch])]
    utts = [(b.channel, u.index, round(u.start, 3), round(u.end, 3)) for b in out if isinstance(b, UtteranceBatch)
            for u in b.utterances]
    return utts, stage.sentence_closes


def test_utterances_close_at_a_sentence_pause_and_a_replay_cuts_them_the_same(tmp_path, shared_audio):
    path = shared_audio / "jfk.flac"
    off, closes_off = spans(tmp_path / "off", path, FixedTextEngine("And so."), 0)
    on, closes = spans(tmp_path / "on", path, FixedTextEngine("And so."), 120)
    assert closes_off == 0 and closes > 0 and len(on) > len(off)
    # Same speech, cut in more places: the new utterances lie inside the old ones, in order.
    assert [u[1] for u in on] == list(range(len(on)))
    assert all(any(o[2] - 1e-3 <= u[2] and u[3] <= o[3] + 1e-3 for o in off) for u in on)
    replay, _ = spans(tmp_path / "replay", path, FixedTextEngine("And so."), 120)
    assert replay == on


def test_a_pause_inside_a_sentence_does_not_close_the_utterance(tmp_path, shared_audio):
    path = shared_audio / "jfk.flac"
    off, _ = spans(tmp_path / "off", path, FixedTextEngine("and so my"), 0)
    engine = FixedTextEngine("and so my")
    on, closes = spans(tmp_path / "on", path, engine, 120)
    assert engine.calls > 0 and closes == 0 and on == off
