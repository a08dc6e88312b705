"""A mono recording of two voices through the embedded pipeline with CALLSENSE_DIARIZE_MONO:
stored as a two-speaker call (agent = who speaks first, customer), each utterance under the
voice that speaks it; without the setting it stays one speaker."""

import numpy as np
import pytest
from two_voice_calls import channel_speech, two_voice_call

from callsense.audio.pcm import wav_bytes
from callsense.audio.vad import RATE, SileroModel
from callsense.core.events import CallOpened
from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.sources import recorded_call
from callsense.ingest.stage import STAGE_ORDER
from callsense.ingest.stages.segment import CallSegmenter
from callsense.ingest.transports.inprocess import InProcessTransport


@pytest.fixture(scope="module")
def mono_call(shared_audio, tmp_path_factory):
    """LJ Speech's reader, then JFK, phrase by phrase, in one mono WAV; and the reference."""
    vad = SileroModel()
    channels = two_voice_call([shared_audio / "LJ050-0131.wav"], [shared_audio / "jfk.flac"], vad)
    path = tmp_path_factory.mktemp("mono") / "two-voices-mono.wav"
    path.write_bytes(wav_bytes(channels.mean(axis=0), RATE))
    return path, channel_speech(channels, vad)


def _speaker_of(start: float, end: float, reference) -> str:
    """The reference voice speaking most of [start, end]."""
    talk = {}
    for t in reference:
        talk[t.speaker] = talk.get(t.speaker, 0.0) + max(0.0, min(end, t.end) - max(start, t.start))
    return max(talk, key=talk.get)


def test_mono_call_with_diarization_is_stored_with_two_speakers(tmp_path, mono_call):
    path, reference = mono_call
    settings = Settings(data_dir=tmp_path / "data", diarize_mono=True)
    res = PipelineResources(settings)
    transport = InProcessTransport([build_stage(name, res) for name in STAGE_ORDER])
    ev = recorded_call(path, res.blobs, settings=settings)
    transport.publish([ev])
    transport.drain()

    call = res.store.get_call(ev.call_id)
    assert call.status == "done" and call.channels == 2 and call.speakers == "agent,customer"
    utts = res.store.utterances(ev.call_id)
    assert {u.channel: u.speaker for u in utts} == {0: "agent", 1: "customer"}
    # Each stored utterance is the voice of its channel: LJ (channel 0 of the reference) is the agent.
    voice = {0: "ch0", 1: "ch1"}
    right = sum(u.end - u.start for u in utts if _speaker_of(u.start, u.end, reference) == voice[u.channel])
    assert right >= 0.9 * sum(u.end - u.start for u in utts)
    assert {s.channel for s in res.store.sentences(ev.call_id) if s.text.strip()} == {0, 1}


def test_diarization_is_off_by_default_and_a_mono_call_stays_one_speaker(tmp_path, mono_call):
    path, _ = mono_call
    settings = Settings(data_dir=tmp_path)
    assert settings.pipeline.diarize_mono is False
    seg = CallSegmenter(settings, PipelineResources(settings).blobs)
    opened = [e for e in seg.handle_batch([recorded_call(path, seg.blobs)]) if isinstance(e, CallOpened)][0]
    assert opened.channels == 1 and opened.speakers == ["speaker"]
