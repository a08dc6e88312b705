"""Silencing spans of a recording: WAV files patched where they lie (every byte outside the
spans kept), anything else decoded and written as FLAC with the same rate, channels and length."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from callsense.audio.decode import decode_native
from callsense.audio.g711 import encode_alaw, encode_mulaw
from callsense.audio.redact import TONE_LEVEL, pad_spans, redact_spans

RATE = 8000
SPANS = [(0.5, 0.75), (1.2, 1.3)]
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _voice(n: int, channels: int) -> np.ndarray:
    """(n, channels) of a loud, never-silent signal, a different one per channel."""
    t = np.arange(n) / RATE
    return np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.2 for c in range(channels)], axis=1)


def _wav(tag: int, bits: int, frames: bytes, channels: int, extensible: bool = False, extra_chunk: bool = True) -> bytes:
    block = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, RATE, RATE * block, block, bits, 22, bits, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, RATE, RATE * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:  # a LIST chunk before the samples (odd length: padded), as many recorders write
        body += b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"
    body += b"data" + struct.pack("<I", len(frames)) + frames
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _encode(x: np.ndarray, tag: int, bits: int) -> bytes:
    flat = x.reshape(-1)
    if tag == 3:
        return flat.astype("<f4" if bits == 32 else "<f8").tobytes()
    ints16 = (np.clip(flat, -1, 1) * 32767).astype("<i2")
    if tag == 6:
        return encode_alaw(ints16)
    if tag == 7:
        return encode_mulaw(ints16)
    if bits == 8:
        return (np.round(flat * 127) + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return ints16.tobytes()
    ints = np.round(flat * (2 ** (bits - 1) - 1)).astype("<i4")
    return ints.tobytes() if bits == 32 else ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


FORMATS = [  # (format tag, bits, channels, extensible)
    (1, 16, 2, False), (1, 8, 1, False), (1, 24, 2, True), (1, 32, 1, False),
    (3, 32, 2, False), (3, 64, 1, True), (6, 8, 1, False), (7, 8, 2, False),
]


@pytest.mark.parametrize("tag,bits,channels,extensible", FORMATS)
def test_wav_spans_silenced_and_every_other_byte_kept(tag, bits, channels, extensible):
    n = 2 * RATE
    data = _wav(tag, bits, _encode(_voice(n, channels), tag, bits), channels, extensible)
    out = redact_spans(data, SPANS)
    assert out.container == "wav" and len(out.data) == len(data)
    assert out.seconds_silenced == pytest.approx(0.35, abs=2 / RATE)
    pcm, rate, _ = decode_native(out.data)
    original, _, _ = decode_native(data)
    assert rate == RATE and pcm.shape == (channels, n)
    inside = np.zeros(n, bool)
    for a, b in SPANS:
        inside[int(a * RATE):int(np.ceil(b * RATE))] = True
    assert np.abs(pcm[:, inside]).max() <= 8 / 32768  # A-law has no exact zero: its quietest code
    assert np.array_equal(pcm[:, ~inside], original[:, ~inside])
    # Byte for byte: only the samples of the spans changed.
    block = channels * bits // 8
    start = len(data) - n * block
    changed = np.flatnonzero(np.frombuffer(out.data, np.uint8) != np.frombuffer(data, np.uint8))
    assert changed.size and changed.min() >= start + int(SPANS[0][0] * RATE) * block
    assert changed.max() < start + int(np.ceil(SPANS[-1][1] * RATE)) * block


@pytest.mark.parametrize("tag,bits", [(1, 16), (1, 24), (3, 32), (7, 8)])
def test_tone_fills_the_spans_at_minus_20_dbfs(tag, bits):
    n = 2 * RATE
    data = _wav(tag, bits, _encode(_voice(n, 2), tag, bits), 2)
    pcm, _, _ = decode_native(redact_spans(data, [(0.5, 1.0)], fill="tone").data)
    span = pcm[:, int(0.5 * RATE):int(1.0 * RATE)]
    assert np.sqrt((span ** 2).mean()) == pytest.approx(TONE_LEVEL / np.sqrt(2), rel=0.05)
    spectrum = np.abs(np.fft.rfft(span[0]))
    assert np.argmax(spectrum) * RATE / span.shape[1] == pytest.approx(1000, abs=5)


def test_other_formats_become_flac_with_the_same_samples_elsewhere():
    data = (SAMPLES / "late-delivery.mp3").read_bytes()
    original, rate, _ = decode_native(data)
    out = redact_spans(data, [(1.0, 2.5)])
    assert out.container == "flac" and out.data[:4] == b"fLaC"
    pcm, out_rate, codec = decode_native(out.data)
    assert (out_rate, codec, pcm.shape) == (rate, "flac", original.shape)
    a, b = int(1.0 * rate), int(np.ceil(2.5 * rate))
    assert np.abs(original[:, a:b]).max() > 0.05 and np.abs(pcm[:, a:b]).max() == 0
    assert np.abs(pcm[:, :a] - original[:, :a]).max() < 2 / 32768  # 16-bit FLAC: lossless but for rounding
    assert np.abs(pcm[:, b:] - original[:, b:]).max() < 2 / 32768


def test_spans_padded_merged_and_clipped_at_zero():
    assert pad_spans([(2.3, 3.0), (0.1, 0.2), (1.0, 2.0)], 0.2) == [(0.0, 0.4), (0.8, 3.2)]
    assert pad_spans([], 0.25) == []
    # Spans past the end of the audio change nothing.
    data = _wav(1, 16, _encode(_voice(RATE, 1), 1, 16), 1)
    assert redact_spans(data, [(5.0, 6.0)]).data == data
