"""Two-voice calls built from the one-speaker recordings of ../shared/data/audio, for the
diarization tests: the voices' phrases in turn, one voice per channel (so each channel's own
speech is the reference), to be mixed down to mono. bench/bench_diarization.py builds its
calls the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from callsense.audio.decode import decode_audio
from callsense.audio.diarization_error import Turn
from callsense.audio.vad import RATE, EndpointerOptions, SileroModel, speech_spans

REFERENCE_VAD = EndpointerOptions(min_silence_ms=300, speech_pad_ms=0, min_speech_ms=250)
PHRASES_VAD = EndpointerOptions(min_silence_ms=300, speech_pad_ms=100, min_speech_ms=250)


def phrases(paths: list[Path], vad: SileroModel) -> list[np.ndarray]:
    out = []
    for path in paths:
        audio = decode_audio(path.read_bytes()).channels[0]
        out += [audio[s.start:s.end] for s in speech_spans(audio, vad, PHRASES_VAD)]
    return out


def two_voice_call(first: list[Path], second: list[Path], vad: SileroModel) -> np.ndarray:
    """(2, samples): after 0.5 s of silence, a phrase of `first` (channel 0), one of `second`
    (channel 1), ... then the rest of either; the gaps between turns are 0.3 s and 0.8 s in turn
    (0.3 s is shorter than the endpointer's minimum silence: that utterance holds both voices)."""
    pa, pb = phrases(first, vad), phrases(second, vad)
    order = [(0, p) for p in pa]
    for i, p in enumerate(pb):
        order.insert(2 * i + 1, (1, p))
    lead = np.zeros(int(0.5 * RATE), np.float32)
    chans: list[list[np.ndarray]] = [[lead], [lead]]
    for turn, (c, phrase) in enumerate(order):
        gap = np.zeros(int((0.3 if turn % 2 == 0 else 0.8) * RATE), np.float32)
        chans[c] += [phrase, gap]
        chans[1 - c] += [np.zeros(phrase.size, np.float32), gap]
    return np.stack([np.concatenate(ch) for ch in chans])


def channel_speech(channels: np.ndarray, vad: SileroModel) -> list[Turn]:
    """The reference: each channel's own speech, speaker `ch<channel>`."""
    return [Turn(s.start / RATE, s.end / RATE, f"ch{c}") for c in range(channels.shape[0])
            for s in speech_spans(channels[c], vad, REFERENCE_VAD)]
