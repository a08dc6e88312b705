"""The live-transcribe stage (CALLSENSE_LIVE_ASR=riva-streaming) against a real riva-serve:
finals while the call is going, in call time, with the embedded engine's words; stereo and
telephony calls; reordered, duplicated and lost chunks; a refused stream; a server killed
mid-call (reopened from the last final) or gone for good (a non-fatal dead letter)."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from process_support import stop_process

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

import jiwer  # noqa: E402

from callsense.asr.engines.riva import RivaEngine  # noqa: E402
from callsense.ingest.stages.live_transcribe import RivaLiveTranscriber  # noqa: E402
from callsense.core.settings import Settings  # noqa: E402
from callsense.core.events import CallChunk, TranscribedUtterance  # noqa: E402
from callsense.ingest.pipeline import PipelineResources, build_stage, parse_stage_names  # noqa: E402
from callsense.ingest.sources import live_chunks, recorded_call  # noqa: E402
from callsense.ingest.stage import pipeline_stage_names, run_safely  # noqa: E402
from callsense.ingest.transports.inprocess import InProcessTransport  # noqa: E402
from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR  # noqa: E402


def live_stage(settings: Settings, check_model: bool = True, **overrides) -> RivaLiveTranscriber:
    """The stage without interim text unless asked for (`live_interim_ms`): interim decodes
    cost riva-serve's CPU, and only the first test looks at them."""
    settings = settings.model_copy(update={"live_asr": "riva-streaming", "live_interim_ms": 0, **overrides})
    return RivaLiveTranscriber(settings, RivaEngine(settings, streaming=True, check_model=check_model))


def feed(stage: RivaLiveTranscriber, chunks, on_chunk=None) -> list[tuple[int, object]]:
    """(seq of the chunk being fed when it came out, event) for every event, one chunk per batch."""
    out = []
    for ch in chunks:
        if on_chunk is not None:
            on_chunk(ch)
        out += [(ch.seq, ev) for ev in run_safely(stage, [ch])]
    return out


def finals(events) -> list[TranscribedUtterance]:
    return [ev for _, ev in events if ev.kind == "transcribed"]


def text_of(utts, normalize, channel: int | None = None) -> str:
    ordered = sorted((u for u in utts if channel is None or u.channel == channel), key=lambda u: (u.channel, u.index))
    return normalize(" ".join(u.text for u in ordered))


def embedded_live_text(path: Path, tmp_path: Path, normalize, channel: int | None = None) -> str:
    """The same call through the VAD path (segment + transcribe stages, embedded Whisper)."""
    res = PipelineResources(Settings(data_dir=tmp_path / "embedded"))
    transport = InProcessTransport([build_stage("segment", res), build_stage("transcribe", res)])
    transport.publish(live_chunks(path, call_id="reference", realtime=False))
    transport.drain()
    return text_of([e for e in transport.unrouted if e.kind == "transcribed"], normalize, channel)


def check_call_events(events, n_channels: int) -> list[TranscribedUtterance]:
    """CallOpened first, CallSegmented last with the finals' count, indexes 0..n-1 per channel."""
    kinds = [ev.kind for _, ev in events]
    assert kinds[0] == "call_opened" and kinds[-1] == "call_segmented", kinds
    assert kinds.count("call_opened") == 1 and kinds.count("call_segmented") == 1
    utts = finals(events)
    segmented = events[-1][1]
    for c in range(n_channels):
        idx = [u.index for u in utts if u.channel == c]
        assert idx == list(range(len(idx))), idx
        assert segmented.utterances_per_channel[c] == len(idx)
    return utts


def test_finals_arrive_during_the_call_in_call_time_with_the_embedded_words(riva_settings, shared_audio, tmp_path, normalize):
    path = shared_audio / "jfk.flac"
    stage = live_stage(riva_settings)
    chunks: list[CallChunk] = []
    opened_during = []

    def watch(ch: CallChunk) -> None:
        chunks.append(ch)
        if ch.seq == 30:
            opened_during.append(stage.open_calls())

    events = feed(stage, live_chunks(path, call_id="jfk-live", agent_id="a-1", realtime=True), on_chunk=watch)  # 11 s
    last = chunks[-1].seq
    utts = check_call_events(events, 1)
    assert opened_during == [{"jfk-live"}] and stage.open_calls() == set()
    # At least one sentence is final before the call's last chunk goes in.
    assert any(seq < last for seq, ev in events if ev.kind == "transcribed"), [(s, e.kind) for s, e in events]
    assert len(utts) >= 2
    for u in utts:
        assert u.speaker == "speaker" and u.agent_id == "a-1"  # one channel: one speaker
        assert u.asr_model == "riva:callsense-whisper-en-US-streaming"
        assert u.live_started_at == chunks[0].stream_started_at
        assert 0 <= u.start < u.end <= 11.2 and u.sentences
        times = [w.start for s in u.sentences for w in s.words]
        assert times == sorted(times) and u.start <= times[0] and u.sentences[-1].end <= u.end + 1e-6
    starts = [u.start for u in utts]
    assert starts == sorted(starts) and starts[-1] > 5.0  # call time, not time within each utterance
    reference = embedded_live_text(path, tmp_path, normalize)
    assert jiwer.wer(reference, text_of(utts, normalize)) <= 0.25, (reference, text_of(utts, normalize))
    assert "ask what you can do for your country" in text_of(utts, normalize)


def test_riva_interim_results_become_the_live_pages_interim_text(riva_settings, shared_audio, normalize):
    stage = live_stage(riva_settings, live_interim_ms=300)
    events = feed(stage, live_chunks(shared_audio / "jfk.flac", call_id="jfk-live", realtime=True))
    utts = check_call_events(events, 1)
    # Riva's interim results became the Live page's grey lines: each names the utterance it
    # will become and comes before that final
    interims = [(i, ev) for i, (_, ev) in enumerate(events) if ev.kind == "interim"]
    assert interims, "no interim text while the call was spoken"
    final_at = {u.index: i for i, (_, u) in enumerate(events) if u.kind == "transcribed"}
    by_index = {u.index: u for u in utts}
    assert [ev.seq for _, ev in interims] == sorted({ev.seq for _, ev in interims})
    last_of = {}
    for pos, ev in interims:
        assert ev.call_id == "jfk-live" and ev.channel == 0 and ev.index in by_index and pos < final_at[ev.index]
        assert 0 <= ev.start <= ev.end <= 11.2
        last_of[ev.index] = ev
    # (what an interim says is riva-serve's business: an early one may be a guess from a syllable)
    assert all(ev.text.strip() for ev in last_of.values())


@pytest.mark.parametrize("encoding,rate", [("s16le", 16000), ("mulaw", 8000)])
def test_stereo_call_has_a_stream_per_channel_with_its_speaker(riva_settings, shared_audio, manifest, normalize, encoding, rate):
    stage = live_stage(riva_settings)
    chunks = live_chunks(shared_audio / "stereo_diarization.wav", call_id=f"stereo-{encoding}", encoding=encoding,
                         sample_rate=rate, realtime=False)
    events = feed(stage, chunks)
    utts = check_call_events(events, 2)
    assert events[0][1].speakers == ["agent", "customer"]
    refs = {m["channel"]: m["text"] for m in manifest if m["audio"] == "stereo_diarization.wav"}
    for c, speaker in enumerate(["agent", "customer"]):
        assert {u.speaker for u in utts if u.channel == c} == {speaker}
        assert jiwer.wer(refs[c], text_of(utts, normalize, c)) <= 0.3, (refs[c], text_of(utts, normalize, c))
    assert abs(events[-1][1].duration_s - 5.0) < 0.15


def test_reordered_and_duplicated_chunks_give_the_same_finals_and_a_gap_is_dead_lettered(riva_settings, shared_audio, normalize):
    chunks = list(live_chunks(shared_audio / "jfk.flac", call_id="in-order", realtime=False))
    in_order = text_of(finals(feed(live_stage(riva_settings), chunks)), normalize)

    shuffled = [c.model_copy(update={"call_id": "shuffled"}) for c in chunks]
    rng = random.Random(7)
    for i in range(0, len(shuffled) - 4, 5):
        block = shuffled[i:i + 5]
        rng.shuffle(block)
        shuffled[i:i + 5] = block
    shuffled.insert(30, shuffled[12])  # a redelivered duplicate
    first = next(i for i, c in enumerate(shuffled) if c.seq == 0)
    shuffled.insert(4, shuffled.pop(first))  # chunks before their call's chunk 0 are held, not lost
    assert shuffled[0].seq != 0
    stage = live_stage(riva_settings)
    events = feed(stage, shuffled)
    check_call_events(events, 1)
    assert not [e for _, e in events if e.kind == "dead_letter"]
    assert jiwer.wer(in_order, text_of(finals(events), normalize)) <= 0.1
    assert stage.open_calls() == set()

    gappy = [c.model_copy(update={"call_id": "gappy"}) for c in chunks[:20] + chunks[45:]]  # 2.5 s lost
    events = feed(live_stage(riva_settings, live_reorder_window=5), gappy)
    dead = [e for _, e in events if e.kind == "dead_letter"]
    assert len(dead) == 1 and "20..44" in dead[0].reason and not dead[0].fatal
    utts = check_call_events([(s, e) for s, e in events if e.kind != "dead_letter"], 1)
    assert utts and utts[-1].end > 9.0  # the call went on, in call time after the silence


def test_with_a_transport_polling_pending_the_last_chunk_does_not_block(riva_settings, shared_audio, normalize):
    stage = live_stage(riva_settings)
    assert stage.pending() == []  # the Kafka transport calls it between polls
    chunks = list(live_chunks(shared_audio / "spk1_snt1.wav", call_id="polled", realtime=False))
    events = feed(stage, chunks[:-1])
    last_batch = feed(stage, chunks[-1:])
    # The batch came back before the stream's last finals: the call is not segmented in it
    # (waiting for the stream, as without `pending()`, would have put call_segmented here) ...
    assert "call_segmented" not in [ev.kind for _, ev in last_batch], "the batch with the last chunk waited for the stream"
    events += last_batch
    # ... and stays open, so it is not committed past until its last finals are out.
    assert stage.open_calls() == {"polled"}
    deadline = time.monotonic() + 60
    while stage.open_calls() and time.monotonic() < deadline:
        events += [(None, e) for e in stage.pending()]
        time.sleep(0.02)
    utts = check_call_events(events, 1)
    assert text_of(utts, normalize) == "the child almost hurt the small dog"


def test_a_refused_stream_fails_the_call_with_one_dead_letter(riva_settings, shared_audio):
    # The worker's start-up check would stop it (RivaEngine(check_model=True)); a model removed later is refused per stream.
    stage = live_stage(riva_settings, check_model=False, riva_streaming_asr_model="no-such-model")
    chunks = list(live_chunks(shared_audio / "spk1_snt1.wav", call_id="refused", realtime=False))
    events = feed(stage, chunks[:5])
    deadline = time.monotonic() + 20
    while not any(e.kind == "dead_letter" for _, e in events) and time.monotonic() < deadline:
        events += [(None, e) for e in stage.pending()]
        time.sleep(0.05)
    dead = [e for _, e in events if e.kind == "dead_letter"]
    assert len(dead) == 1 and dead[0].fatal and "no-such-model" in dead[0].reason and dead[0].call_id == "refused"
    assert stage.open_calls() == set()  # the consumer may commit past it
    rest = feed(stage, chunks[5:])
    assert [e.kind for _, e in rest] == []
    assert stage.pending() == [] and stage.open_calls() == set()


# --------------------------------------------------------------------------- failures


@pytest.fixture
def riva_serve_process(pick_ports, tmp_path):
    """Start/kill a `callsense riva-serve` process on a fixed port (stopped by PID at the end)."""
    port = pick_ports(1)[0]
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "callsense", "riva-serve", "--port", str(port), "--workers", "4"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "300"})
        procs.append(proc)
        lines = []
        for line in proc.stdout:
            lines.append(line.decode(errors="replace"))
            if "listening on" in lines[-1]:
                break
        else:
            pytest.fail(f"riva-serve did not start:\n{''.join(lines)}", pytrace=False)
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
        return proc

    start.url = f"127.0.0.1:{port}"
    yield start
    for proc in procs:
        stop_process(proc)


def test_riva_serve_killed_mid_call_and_restarted_the_call_completes(riva_serve_process, shared_audio, normalize, caplog):
    server = riva_serve_process()
    settings = Settings(riva_url=riva_serve_process.url, riva_retries=0, riva_retry_backoff_s=0.2, riva_timeout_s=60)
    stage = live_stage(settings)
    restarted: list[subprocess.Popen] = []
    path = shared_audio / "jfk.flac"

    def chaos(ch: CallChunk) -> None:
        if ch.seq == 55:  # mid-call, after the first final: SIGKILL, then a new server while the call goes on
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            threading.Thread(target=lambda: restarted.append(riva_serve_process()), daemon=True).start()

    with caplog.at_level(logging.INFO, logger="callsense.live"):
        events = feed(stage, live_chunks(path, call_id="chaos", realtime=True), on_chunk=chaos)
    assert restarted, "riva-serve was not restarted"
    log_text = caplog.text
    assert "Riva stream failed" in log_text and "reopening it from call time" in log_text, log_text
    dead = [e for _, e in events if e.kind == "dead_letter"]
    assert dead == [], dead
    utts = check_call_events(events, 1)
    got = text_of(utts, normalize)
    assert jiwer.wer("and so my fellow americans ask not what your country can do for you "
                     "ask what you can do for your country", got) <= 0.35, got
    assert got.endswith("do for your country"), got  # audio after the kill was replayed into the new stream
    starts = [u.start for u in utts]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # nothing recognized twice


def test_riva_gone_for_good_gives_a_non_fatal_dead_letter_and_the_call_completes(pick_ports, shared_audio):
    dead_url = f"127.0.0.1:{pick_ports(1)[0]}"  # nothing listens there
    settings = Settings(riva_url=dead_url, riva_retries=0, riva_retry_backoff_s=0.1, riva_stream_recovery_s=1.5,
                        riva_timeout_s=10)
    stage = live_stage(settings)
    events = feed(stage, live_chunks(shared_audio / "spk2_snt2.wav", call_id="no-riva", realtime=False))
    deadline = time.monotonic() + 20
    while stage.open_calls() and time.monotonic() < deadline:
        events += [(None, e) for e in stage.pending()]
        time.sleep(0.05)
    kinds = [e.kind for _, e in events]
    assert kinds[0] == "call_opened" and kinds[-1] == "call_segmented", kinds
    dead = [e for _, e in events if e.kind == "dead_letter"]
    assert dead and all(not d.fatal and d.call_id == "no-riva" for d in dead)
    assert dead_url in dead[0].reason and "was not transcribed" in dead[0].reason and "call time 0.00.." in dead[0].reason
    assert events[-1][1].utterances_per_channel == {0: 0}  # the call is complete (done) with what could be heard


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "manifest.json").is_file(), reason=f"the sentiment model is not built ({DEFAULT_MODEL_DIR})")
def test_in_process_pipeline_sends_recordings_to_segment_and_live_calls_to_riva(riva_settings, shared_audio, tmp_path, normalize):
    settings = riva_settings.model_copy(update={"data_dir": tmp_path, "live_asr": "riva-streaming"})
    res = PipelineResources(settings)
    transport = InProcessTransport([build_stage(n, res) for n in pipeline_stage_names(settings.pipeline.live_asr)])
    recorded = recorded_call(shared_audio / "spk1_snt1.wav", res.blobs)
    transport.publish([recorded, *live_chunks(shared_audio / "spk2_snt4.wav", call_id="live-in-process", realtime=False)])
    transport.drain()
    assert [e for e in transport.unrouted if e.kind == "dead_letter"] == []
    for call_id, text, model in ((recorded.call_id, "the child almost hurt the small dog", "moonshine:"),
                                 ("live-in-process", "mend the coat before you go out", "riva:callsense-whisper-en-US-streaming")):
        call = res.store.get_call(call_id)
        assert call.status == "done" and call.mode == ("live" if call_id.startswith("live") else "recorded")
        rows = res.store.sentences(call_id)
        assert normalize(" ".join(r.text for r in rows)) == text and all(r.sentiment for r in rows)
        assert all(r.asr_model.startswith(model) for r in rows)
    assert len(res.store.utterances("live-in-process")) == res.store.get_call("live-in-process").utterances_expected == 1


# --------------------------------------------------------------------------- settings and stage names


def test_stage_names_follow_the_live_asr_setting():
    assert parse_stage_names("all") == ["segment", "transcribe", "sentiment", "store"]
    assert parse_stage_names("all", "riva-streaming") == ["segment", "live-transcribe", "transcribe", "sentiment", "store"]
    assert parse_stage_names("live-transcribe,store", "riva-streaming") == ["live-transcribe", "store"]
    with pytest.raises(ValueError, match="CALLSENSE_LIVE_ASR=riva-streaming"):
        parse_stage_names("segment,live-transcribe")
    assert Settings().pipeline.worker_stages == "all"


def test_segment_stage_leaves_live_calls_to_riva_streaming(tmp_path, shared_audio):
    res = PipelineResources(Settings(data_dir=tmp_path, live_asr="riva-streaming"))
    segment = build_stage("segment", res)
    out = feed(segment, live_chunks(shared_audio / "spk2_snt2.wav", call_id="skip", realtime=False))
    assert out == [] and segment.open_calls() == set()
