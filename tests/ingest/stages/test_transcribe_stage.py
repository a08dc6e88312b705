"""The transcribe stage on real speech: utterances of different live calls that wait
together share one Whisper pass, and each call gets back only its own words."""

import json

import jiwer
import pytest

from callsense.asr.base import create_asr_engine
from callsense.ingest.stages.transcribe import UtteranceTranscriber
from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore
from callsense.audio.decode import decode_audio
from callsense.audio.pcm import float_to_s16le
from callsense.core.events import UtteranceBatch, UtteranceSpan


class CountingEngine:
    """The real engine, counting its passes."""

    def __init__(self, engine):
        self._engine = engine
        self.passes = 0
        self.live_passes = 0
        self.fixed_window_s = engine.fixed_window_s
        self.model_id = engine.model_id

    def transcribe(self, audio):
        self.passes += 1
        return self._engine.transcribe(audio)

    def transcribe_live(self, audio):
        self.passes += 1
        self.live_passes += 1
        return self._engine.transcribe_live(audio)


@pytest.fixture(scope="module")
def engine():
    return CountingEngine(create_asr_engine(Settings(asr_engine="whisper")))  # packing is for fixed-window engines


def normalize(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).replace("-", " ").strip()


def live_utterance(blobs, shared_audio, name, call_id, start):
    audio = decode_audio((shared_audio / name).read_bytes()).channels.mean(axis=0)
    dur = audio.size / 16000
    return UtteranceBatch(call_id=call_id, channel=1, speaker="customer",
                          utterances=[UtteranceSpan(index=0, start=start, end=start + dur, offset=0.0)],
                          audio=blobs.put(float_to_s16le(audio)), live_started_at=1.0)


def test_waiting_utterances_of_many_calls_share_one_pass(engine, shared_audio, tmp_path):
    refs = {json.loads(x)["audio"]: json.loads(x)["text"] for x in (shared_audio / "manifest.jsonl").read_text().splitlines()}
    names = ["spk1_snt1.wav", "jfk.flac", "spk1_snt3.wav", "spk2_snt4.wav"]
    blobs = BlobStore(tmp_path, 1 << 30)
    events = [live_utterance(blobs, shared_audio, n, f"call-{i}", start=10.0 * i) for i, n in enumerate(names)]
    stage = UtteranceTranscriber(engine, blobs, pack_window_s=28.0)
    engine.passes = engine.live_passes = 0
    out = stage.handle_batch(events)
    assert engine.passes == engine.live_passes == 1  # greedy: a person is waiting; 1.8 + 11 + 2.6 + 2.3 s (+ 1 s between calls) fit one window
    assert [(u.call_id, u.index) for u in out] == [(f"call-{i}", 0) for i in range(len(names))]
    for i, (name, u) in enumerate(zip(names, out)):
        # Each call's words, and only its words, in that call's time.
        assert jiwer.wer(refs[name], normalize(u.text)) <= 0.15, (name, u.text)
        words = [w for s in u.sentences for w in s.words]
        assert words and all(u.start - 0.3 <= w.start <= w.end <= u.end + 0.3 for w in words), (name, u.start, u.end, [(w.text, w.start, w.end) for w in words][-3:])


def test_long_batches_are_not_packed(engine, shared_audio, tmp_path):
    blobs = BlobStore(tmp_path, 1 << 30)
    events = [live_utterance(blobs, shared_audio, "jfk.flac", f"call-{i}", start=0.0) for i in range(3)]
    stage = UtteranceTranscriber(engine, blobs, pack_window_s=28.0)
    engine.passes = 0
    out = stage.handle_batch(events)
    assert engine.passes == 2  # 11 s + 1 + 11 s fit, a third does not
    assert len({normalize(u.text) for u in out}) >= 1 and all("country" in normalize(u.text) for u in out)


def test_recorded_batches_keep_their_own_pass(engine, shared_audio, tmp_path):
    # The segment stage packs a recorded call's channel itself; the stage adds nothing to it.
    blobs = BlobStore(tmp_path, 1 << 30)
    events = [live_utterance(blobs, shared_audio, "spk1_snt1.wav", f"call-{i}", start=0.0).model_copy(update={"live_started_at": None})
              for i in range(2)]
    engine.passes = engine.live_passes = 0
    out = UtteranceTranscriber(engine, blobs, pack_window_s=28.0).handle_batch(events)
    assert engine.passes == 2 and engine.live_passes == 0 and [u.call_id for u in out] == ["call-0", "call-1"]


def test_engines_without_a_fixed_window_get_one_pass_per_batch(shared_audio, tmp_path):
    class LengthPricedEngine(CountingEngine):
        def __init__(self, engine):
            super().__init__(engine)
            self.fixed_window_s = None

    blobs = BlobStore(tmp_path, 1 << 30)
    eng = LengthPricedEngine(create_asr_engine(Settings()))
    events = [live_utterance(blobs, shared_audio, "spk1_snt1.wav", f"call-{i}", start=0.0) for i in range(2)]
    out = UtteranceTranscriber(eng, blobs, pack_window_s=28.0).handle_batch(events)
    assert eng.passes == 2 and len(out) == 2
