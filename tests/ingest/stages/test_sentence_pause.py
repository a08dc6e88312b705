"""Live calls: an utterance closed at a short pause where its words so far end a sentence
(live_sentence_pause_ms), so the sentence need not wait for the rest of the utterance. The
decision depends on the audio alone, so a replayed call is cut the same way."""

from __future__ import annotations

import pytest

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


# ---- what the check heard is the final transcript (no second recognition) -------------

@pytest.fixture(scope="module")
def live_engine():
    """The default live engine (Moonshine), real."""
    from callsense.asr.base import create_asr_engine

    return create_asr_engine(Settings())


def _live_through(tmp_path, path, pause_ms: int, engine=None, pii: str = "mask"):
    """A live call through the segment and transcribe stages of one worker (the live engine
    shared as PipelineResources shares it): (utterance batches, transcribed utterances, passes
    of the engine made by the transcribe stage)."""
    from callsense.ingest.pipeline import PipelineResources, build_stage

    settings = Settings(data_dir=tmp_path, live_interim_ms=0, live_sentence_pause_ms=pause_ms, pii_redaction=pii)
    res = PipelineResources(settings)
    if engine is not None:
        res.asr_engine = engine  # cached_property: the stages below take this one
    seg, tr = build_stage("segment", res), build_stage("transcribe", res)
    batches, results = [], []
    transcribe_passes = 0
    for ch in live_chunks(path, call_id="c1", realtime=False):
        for ev in seg.handle_batch([ch]):
            if isinstance(ev, UtteranceBatch):
                batches.append(ev)
                before = getattr(engine, "calls", 0)
                results.extend(tr.handle_batch([ev]))
                transcribe_passes += getattr(engine, "calls", 0) - before
    return batches, results, transcribe_passes


class CountingEngine:
    """The real live engine, counting its passes."""

    fixed_window_s = None

    def __init__(self, engine):
        self.engine, self.calls = engine, 0
        self.model_id = engine.model_id

    def transcribe_live(self, audio):
        self.calls += 1
        return self.engine.transcribe_live(audio)

    transcribe = transcribe_live


def test_an_utterance_closed_at_a_checked_pause_is_recognized_once(tmp_path, shared_audio, live_engine):
    import jiwer

    engine = CountingEngine(live_engine)
    batches, results, passes = _live_through(tmp_path, shared_audio / "jfk.flac", 180, engine)
    heard = [b for b in batches if b.recognized is not None]
    # Every utterance here ends in a pause the check heard (at a sentence end or not), so
    # the transcribe stage ran no pass of its own: one pass per checked pause, no more.
    assert heard and len(heard) == len(batches) == len(results)
    assert passes == 0 and engine.calls >= len(heard)
    for b, r in zip(batches, results):
        u = b.utterances[0]
        assert b.recognized_by == live_engine.model_id
        assert all(u.start <= w.start <= w.end <= u.end for w in b.recognized)
        assert r.text == " ".join(w.text for w in b.recognized) or r.text.split() == [w.text for w in b.recognized]
    # ... and it is the speech: the JFK line, as the engine hears it with the pause off.
    off = CountingEngine(live_engine)
    off_batches, plain, off_passes = _live_through(tmp_path / "off", shared_audio / "jfk.flac", 0, off)
    assert off_passes == len(off_batches) and not any(b.recognized for b in off_batches)
    said = " ".join(r.text for r in results)
    assert jiwer.wer(" ".join(r.text for r in plain).lower(), said.lower()) < 0.25
    assert jiwer.wer("and so my fellow americans ask not what your country can do for you "
                     "ask what you can do for your country", jiwer.RemovePunctuation()(said.lower())) < 0.25


def test_words_heard_for_another_model_are_recognized_again(tmp_path, shared_audio, live_engine):
    engine = CountingEngine(live_engine)
    batches, _, _ = _live_through(tmp_path / "on", shared_audio / "jfk.flac", 180, engine)
    from callsense.ingest.stages.transcribe import UtteranceTranscriber

    other = CountingEngine(live_engine)
    other.model_id = "another-model"
    tr = UtteranceTranscriber(other, BlobStore(tmp_path / "on" / "blobs", 1 << 20))
    out = [t for b in batches for t in tr.handle_batch([b])]
    assert other.calls == len(batches) and all(t.asr_model == "another-model" for t in out)


def test_words_heard_at_a_pause_leave_the_segment_stage_with_pii_masked(tmp_path, shared_audio):
    engine = FixedTextEngine("My card is 4111 1111 1111 1111.")
    engine.transcribe = engine.transcribe_live
    settings = Settings(data_dir=tmp_path, live_interim_ms=0, live_sentence_pause_ms=120, pii_redaction="mask")
    stage = CallSegmenter(settings, BlobStore(tmp_path / "blobs", settings.pipeline.inline_audio_max_bytes),
                          pause_engine=lambda: engine)
    out = [e for ch in live_chunks(shared_audio / "jfk.flac", call_id="c1", realtime=False) for e in stage.handle_batch([ch])]
    heard = [b for b in out if isinstance(b, UtteranceBatch) and b.recognized is not None]
    assert heard
    for b in heard:
        text = " ".join(w.text for w in b.recognized)
        assert "[CARD]" in text and not any(ch.isdigit() for ch in text), text
