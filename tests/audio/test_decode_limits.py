"""Lying headers and absurd formats are refused by the header, before anything is decoded."""

import struct
import subprocess

import numpy as np
import pytest

from callsense.audio.decode import AudioLimits, decode_audio, probe_audio
from callsense.core.errors import BadInput


def wav_bytes(rate: int, channels: int, bits: int, fmt_tag: int = 1, data: bytes = bytes(92_000)) -> bytes:
    block = channels * max(bits, 8) // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
def test_a_1_hz_header_is_refused_before_decoding(decoder):
    # 92 KB that would decode to 12.75 h at 16 kHz (> 22 GB of float32): refused by the header.
    with pytest.raises(BadInput, match="sample rate 1 Hz"):
        decode_audio(wav_bytes(1, 1, 16), decoder)
    with pytest.raises(BadInput, match="sample rate 1 Hz"):
        probe_audio(wav_bytes(1, 1, 16))


@pytest.mark.parametrize("header", [dict(bits=0), dict(bits=16, fmt_tag=0x1234), dict(bits=16, channels=0)])
def test_lying_headers_are_bad_input_not_internal_errors(header):
    args = {"rate": 8000, "channels": 1, **header}
    for call in (lambda d: decode_audio(d), lambda d: probe_audio(d), lambda d: decode_audio(d, "ffmpeg")):
        with pytest.raises(BadInput) as e:
            call(wav_bytes(**args))
        assert "Error" not in str(e.value) and "internal" not in str(e.value)


def test_too_many_channels_and_too_long_are_refused():
    with pytest.raises(BadInput, match="9 audio channels"):
        probe_audio(wav_bytes(8000, 9, 16, data=bytes(9 * 2 * 800)))
    ten_seconds = wav_bytes(8000, 1, 16, data=bytes(8000 * 2 * 10))
    assert probe_audio(ten_seconds).duration_s == pytest.approx(10)
    with pytest.raises(BadInput, match="longer than the limit of 5 s"):
        probe_audio(ten_seconds, AudioLimits(max_seconds=5))
    with pytest.raises(BadInput, match="longer than the limit"):
        decode_audio(ten_seconds, limits=AudioLimits(max_seconds=5))
    with pytest.raises(BadInput, match="sample rate 8000 Hz"):
        decode_audio(ten_seconds, limits=AudioLimits(min_rate=16000))


@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
def test_decoding_stops_at_the_ceiling_when_the_header_does_not_say(decoder):
    # Streamed WAV from ffmpeg: the sizes in the header are unknown (0xFFFFFFFF), so only
    # the ceiling on decoded samples can stop it.
    tone = (np.sin(np.arange(8000 * 6) * 0.05) * 8000).astype("<i2").tobytes()
    wav = subprocess.run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", "pipe:",
                          "-f", "wav", "pipe:"], input=tone, capture_output=True, check=True).stdout
    assert decode_audio(wav, decoder).duration_s == pytest.approx(6, abs=0.1)
    with pytest.raises(BadInput, match="longer than the limit of 2 s"):
        decode_audio(wav, decoder, AudioLimits(max_seconds=2))
