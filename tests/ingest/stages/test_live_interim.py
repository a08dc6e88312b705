"""Interim text of live calls from the segment stage: while an utterance is open, its words so
far go out as `InterimTranscript` (topic `interim`) at most every live_interim_ms of new
audio, only with new speech, never when the stage is behind real time, and never with an
engine that pays for a fixed window. Time is a fake clock here (no sleeps): the stage is
told each chunk is handled exactly when its audio ends, and recognizes interims inline
(`interim_background=False`; in workers a low-priority thread does it)."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.asr.base import RecognizedSegment
from callsense.core.events import InterimTranscript, UtteranceBatch
from callsense.core.settings import Settings
from callsense.ingest.interim import InterimBoard
from callsense.ingest.sources import live_chunks
from callsense.ingest.stage import TOPIC_OF_KIND
from callsense.ingest.stages.segment import CallSegmenter
from callsense.store.blobs import BlobStore


class SecondsEngine:
    """Says how much audio it was given (so interims can be checked against the audio)."""

    fixed_window_s = None
    model_id = "seconds"

    def __init__(self):
        self.calls: list[int] = []

    def transcribe_live(self, audio):
        self.calls.append(audio.size)
        yield RecognizedSegment(text=f"heard {audio.size / 16000:.1f} s", start=0.0, end=audio.size / 16000)


class WindowEngine(SecondsEngine):
    fixed_window_s = 30.0


def run_call(tmp_path, path, engine, *, behind_s: float = 0.0, interim_ms: int = 300):
    settings = Settings(data_dir=tmp_path, live_interim_ms=interim_ms, live_sentence_pause_ms=0)  # interims alone
    stage = CallSegmenter(settings, BlobStore(tmp_path / "blobs", settings.pipeline.inline_audio_max_bytes),
                          interim_engine=lambda: engine, interim_background=False)
    now = [0.0]
    stage.clock = lambda: now[0]
    out = []
    for ch in live_chunks(path, call_id="c1", realtime=False):
        now[0] = ch.stream_started_at + (ch.seq + 1) * 0.1 + behind_s  # the chunk's audio just ended (+ lag)
        out.extend(stage.handle_batch([ch]))
    return out


def test_open_utterances_get_interim_text_before_their_final_batch(tmp_path, shared_audio):
    engine = SecondsEngine()
    out = run_call(tmp_path, shared_audio / "jfk.flac", engine)  # 11 s, one channel, several utterances
    interims = [e for e in out if isinstance(e, InterimTranscript)]
    finals = [e for e in out if isinstance(e, UtteranceBatch)]
    assert TOPIC_OF_KIND["interim"] == "interim" and len(finals) >= 2 and len(interims) >= 5
    assert [e.seq for e in interims] == list(range(1, len(interims) + 1))
    for i, ev in enumerate(out):
        if isinstance(ev, InterimTranscript):
            # Every interim comes before the final batch of the utterance it belongs to, and is about it.
            final = next(f for f in out[i:] if isinstance(f, UtteranceBatch))
            assert final.utterances[0].index == ev.index and ev.speaker == "speaker"
            assert abs(ev.start - final.utterances[0].start) < 0.05 and ev.end <= final.utterances[0].end + 0.5
            assert ev.text == f"heard {ev.end - ev.start:.1f} s"
    # At most one interim per 300 ms of new audio.
    ends = [e.end for e in interims]
    assert all(b - a >= 0.3 - 1e-6 for a, b in zip(ends, ends[1:]))
    # Utterances of up to ~4 s: interim audio grows within one utterance.
    by_utt = {}
    for e in interims:
        by_utt.setdefault(e.index, []).append(e.end - e.start)
    assert all(v == sorted(v) for v in by_utt.values())


def test_no_interims_when_behind_real_time_disabled_or_with_a_fixed_window_engine(tmp_path, shared_audio):
    path = shared_audio / "jfk.flac"
    for engine, behind, ms in ((SecondsEngine(), 1.0, 300), (SecondsEngine(), 0.0, 0), (WindowEngine(), 0.0, 300)):
        out = run_call(tmp_path / f"{behind}-{ms}-{engine.fixed_window_s}", path, engine, behind_s=behind, interim_ms=ms)
        assert not [e for e in out if isinstance(e, InterimTranscript)] and engine.calls == []
        assert [e for e in out if isinstance(e, UtteranceBatch)]  # finals are unaffected


def test_the_board_keeps_the_newest_interim_until_its_final_is_stored():
    board = InterimBoard()

    def ev(index, seq, text, channel=0, at=100.0):
        return InterimTranscript(call_id="c", channel=channel, index=index, text=text, start=float(index), end=index + 1.0,
                                 seq=seq, at=at)

    board.put(ev(0, 1, "hello"))
    board.put(ev(0, 2, "hello there"))
    board.put(ev(0, 1, "hello"))  # late redelivery: older, ignored
    board.put(ev(3, 1, "yes", channel=1))
    assert [e.text for e in board.of_call("c", {}, now=101.0)] == ["hello there", "yes"]
    assert [e.text for e in board.of_call("c", {0: 0}, now=101.0)] == ["yes"]  # channel 0's utterance 0 is stored
    assert board.of_call("c", {}, now=200.0) == []  # stale
    assert board.of_call("other", {}, now=101.0) == []


def test_the_background_runner_keeps_only_the_newest_request_per_channel():
    import threading

    from callsense.ingest.stages.interim import InterimRequest, InterimRunner

    release, started = threading.Event(), threading.Event()
    engine = SecondsEngine()
    slow = SecondsEngine()

    def transcribe_live(audio):
        started.set()
        release.wait()
        return engine.transcribe_live(audio)

    slow.transcribe_live = transcribe_live
    runner = InterimRunner(lambda: slow, max_wait_s=1e9)

    def req(seq, seconds):
        return InterimRequest("c", 0, "agent", 0, 0.0, seconds, seq, np.zeros(int(seconds * 16000), np.float32), 0.0)

    runner.ask(req(1, 1.0))
    assert started.wait(60)  # the thread is busy with the first
    runner.ask(req(2, 2.0))
    runner.ask(req(3, 3.0))  # replaces 2, which is never recognized
    release.set()
    runner.wait_idle()
    got = runner.collect()
    assert [(e.seq, e.text) for e in got] == [(1, "heard 1.0 s"), (3, "heard 3.0 s")]


@pytest.mark.kafka
def test_the_feed_reads_interims_published_to_the_topic(kafka_bootstrap):
    import threading
    import uuid

    from callsense.ingest.interim import InterimFeed
    from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:8]}", kafka_partitions=2)
    ensure_topics(settings)
    publisher = KafkaPublisher(settings)
    arrived = threading.Event()
    feed = InterimFeed(settings)
    put = feed.put

    def put_and_tell(ev):
        put(ev)
        arrived.set()

    feed.put = put_and_tell
    try:
        publisher.publish([InterimTranscript(call_id="c9", channel=1, speaker="customer", index=2, text="so far",
                                             start=3.0, end=4.0, seq=1)])
        publisher.flush()
        assert arrived.wait(120)
        assert [(e.channel, e.index, e.text) for e in feed.of_call("c9", {})] == [(1, 2, "so far")]
    finally:
        feed.close()
        publisher.close()


def test_no_interim_starts_while_a_final_is_being_recognized():
    """The transcribe stage holds FinalsFirst.final() during a final's recognition; the interim
    thread waits for it to clear before starting one (finals first, inside the process)."""
    import threading

    from callsense.ingest.stages.interim import FinalsFirst, InterimRequest, InterimRunner

    waiting = threading.Event()

    class Gate(FinalsFirst):
        def wait_clear(self, timeout):
            waiting.set()
            return super().wait_clear(timeout)

    gate, engine = Gate(), SecondsEngine()
    runner = InterimRunner(lambda: engine, max_wait_s=1e9, finals_first=gate)
    with gate.final():
        runner.ask(InterimRequest("c", 0, "agent", 0, 0.0, 1.0, 1, np.zeros(16000, np.float32), 0.0))
        assert waiting.wait(60)  # the thread got the request and waits for the final
        assert engine.calls == []
    runner.wait_idle()
    assert [e.text for e in runner.collect()] == ["heard 1.0 s"] and engine.calls == [16000]


class CardEngine(SecondsEngine):
    """Hears a card number being read out, a digit more with every interim."""

    digits = "four one one one two two two two".split()

    def transcribe_live(self, audio):
        self.calls.append(audio.size)
        yield RecognizedSegment(text="my card is " + " ".join(self.digits[:len(self.calls) % 8 + 1]), start=0.0,
                                end=audio.size / 16000)


def test_interim_text_leaves_the_stage_with_pii_masked_even_a_number_cut_short(tmp_path, shared_audio):
    out = run_call(tmp_path, shared_audio / "jfk.flac", CardEngine())
    interims = [e for e in out if isinstance(e, InterimTranscript)]
    assert interims
    masked = 0
    for ev in interims:
        # a run of three or more digits is masked; one or two leading digits of a card say
        # nothing about it (PCI DSS allows the first six to be shown)
        assert sum(w in ("four", "one", "two") for w in ev.text.split()) <= 2, ev.text
        masked += "[NUMBER]" in ev.text or "[CARD]" in ev.text
    assert masked >= len(interims) // 2
