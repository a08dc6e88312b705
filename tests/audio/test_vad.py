"""The streaming endpointer must cut recorded and live audio the same way, and agree with
faster-whisper's own (batch) Silero VAD."""

import numpy as np
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps

from callsense.audio.decode import decode_audio
from callsense.audio.vad import (
    EndpointerOptions, SileroModel, SpeechProbabilityStream, UtteranceEndpointer, speech_spans,
)


@pytest.fixture(scope="module")
def silero():
    return SileroModel()


@pytest.mark.parametrize("name", ["jfk.flac", "LJ050-0131.wav", "stereo_diarization.wav"])
def test_spans_match_faster_whisper_reference(silero, shared_audio, name):
    audio = decode_audio((shared_audio / name).read_bytes()).channels[0]
    opts = EndpointerOptions(min_silence_ms=500, speech_pad_ms=200, min_speech_ms=250, max_utterance_s=15)
    ours = [(s.start, s.end) for s in speech_spans(audio, silero, opts)]
    ref = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=500, speech_pad_ms=200,
                                                  min_speech_duration_ms=250, max_speech_duration_s=15))
    assert len(ours) == len(ref) and len(ours) >= 1
    for (s, e), r in zip(ours, ref):
        assert abs(s - r["start"]) <= 512 and abs(e - r["end"]) <= 0.35 * 16000


def test_chunked_stream_equals_whole(silero, shared_audio):
    audio = decode_audio((shared_audio / "jfk.flac").read_bytes()).channels[0]
    opts = EndpointerOptions()
    whole = speech_spans(audio, silero, opts)
    stream, ep, chunked = SpeechProbabilityStream(silero), UtteranceEndpointer(opts), []
    for i in range(0, audio.size, 1600):
        chunked += ep.push(stream.push(audio[i:i + 1600]))
    chunked += ep.finish()
    assert [(s.start, min(s.end, audio.size)) for s in chunked] == [(s.start, s.end) for s in whole]
    assert len(whole) == 4  # JFK's four phrases


def test_silence_has_no_speech_and_long_speech_is_cut(silero, shared_audio):
    assert speech_spans(np.zeros(16000 * 3, np.float32), silero, EndpointerOptions()) == []
    audio = decode_audio((shared_audio / "jfk.flac").read_bytes()).channels[0]
    spans = speech_spans(audio, silero, EndpointerOptions(min_silence_ms=3000, max_utterance_s=4.0))
    assert len(spans) >= 3
    assert all((s.end - s.start) / 16000 <= 4.0 + 0.01 for s in spans)
