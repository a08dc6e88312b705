"""Silence time spans of a recording (PII said aloud): zeroes, or a beep, on every channel.

A PCM or G.711 WAV file (8/16/24/32-bit integer, 32/64-bit float, A-law, mu-law; plain or
WAVE_FORMAT_EXTENSIBLE) is patched where it lies: its header, its other chunks and every byte
outside the spans stay as they were. Any other file (MP3, Ogg, FLAC, M4A, RF64, ...) is decoded
at its own rate and channel count and written as 16-bit FLAC: lossless from the decoded
samples, where re-encoding to the same lossy codec would blur the edges of the spans and
cost quality everywhere else.

Every channel is silenced over every span: a card number read out by the customer is also
heard on the agent's channel (echo, sidetone, or the agent repeating it).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from callsense.audio.decode import AudioLimits, decode_native
from callsense.audio.g711 import encode_alaw, encode_mulaw
from callsense.audio.pcm import float_to_int16

Fill = Literal["silence", "tone"]
TONE_HZ = 1000.0
TONE_LEVEL = 0.1  # -20 dBFS: audible as "something was removed here", not painful

_PCM, _FLOAT, _ALAW, _MULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


@dataclass(frozen=True)
class RedactedAudio:
    data: bytes
    container: str  # wav (patched where it lay) | flac (decoded and written anew)
    seconds_silenced: float  # per channel, after merging overlapping spans and clipping to the audio


@dataclass(frozen=True)
class _WavLayout:
    tag: int  # format tag (the subformat's, for WAVE_FORMAT_EXTENSIBLE)
    channels: int
    rate: int
    bits: int
    block_align: int
    data_offset: int
    data_size: int  # clipped to the bytes actually present


def pad_spans(spans: Sequence[tuple[float, float]], pad_s: float) -> list[tuple[float, float]]:
    """Spans widened by `pad_s` on each side (not before 0), sorted, overlapping ones merged."""
    out: list[list[float]] = []
    for start, end in sorted((max(0.0, min(a, b) - pad_s), max(a, b) + pad_s) for a, b in spans):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def redact_spans(data: bytes, spans: Sequence[tuple[float, float]], fill: Fill = "silence",
                 limits: AudioLimits | None = None) -> RedactedAudio:
    """The recording with `spans` (seconds from its first sample; pad them first) silenced or
    covered by a tone. Raises BadInput when the file cannot be decoded."""
    spans = pad_spans(spans, 0.0)
    wav = _wav_layout(data)
    if wav is not None:
        return _patch_wav(data, wav, spans, fill)
    pcm, rate, _ = decode_native(data, limits)
    seconds = 0.0
    for a, b in _frame_ranges(spans, rate, pcm.shape[1]):
        pcm[:, a:b] = _tone(a, b, rate)[None, :] if fill == "tone" else 0.0
        seconds += (b - a) / rate
    return RedactedAudio(_flac_bytes(pcm, rate), "flac", seconds)


def _frame_ranges(spans: Sequence[tuple[float, float]], rate: int, n_frames: int) -> list[tuple[int, int]]:
    out = []
    for start, end in spans:
        a, b = max(0, math.floor(start * rate)), min(n_frames, math.ceil(end * rate))
        if b > a:
            out.append((a, b))
    return out


def _tone(a: int, b: int, rate: int) -> np.ndarray:
    """The beep over frames a..b, its phase following call time (adjacent spans join smoothly)."""
    return (TONE_LEVEL * np.sin(2 * np.pi * TONE_HZ * np.arange(a, b) / rate)).astype(np.float32)


# ---- WAV, patched where it lies ---------------------------------------------------------

def _wav_layout(data: bytes) -> _WavLayout | None:
    """Where a RIFF/WAVE file's samples are and how they are coded; None when it is not a WAV
    file this module can patch (then it is decoded and written as FLAC)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt " and size >= 16 and body + size <= len(data):
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _EXTENSIBLE and size >= 40:
                tag = struct.unpack_from("<H", data, body + 24)[0]  # first two bytes of the subformat GUID
            fmt = (tag, channels, rate, bits, block_align)
        elif cid == b"data":
            if fmt is None:
                return None
            tag, channels, rate, bits, block_align = fmt
            ok = ((tag == _PCM and bits in (8, 16, 24, 32)) or (tag == _FLOAT and bits in (32, 64))
                  or (tag in (_ALAW, _MULAW) and bits == 8))
            if not ok or channels < 1 or rate < 1 or block_align != channels * bits // 8:
                return None
            present = min(size, len(data) - body)  # a streamed WAV may declare 0 or 0xFFFFFFFF
            if size in (0, 0xFFFFFFFF):
                present = len(data) - body
            return _WavLayout(tag, channels, rate, bits, block_align, body, present - present % block_align)
        pos = body + size + (size & 1)
    return None


def _patch_wav(data: bytes, wav: _WavLayout, spans: Sequence[tuple[float, float]], fill: Fill) -> RedactedAudio:
    out = bytearray(data)
    n_frames = wav.data_size // wav.block_align
    seconds = 0.0
    for a, b in _frame_ranges(spans, wav.rate, n_frames):
        lo, hi = wav.data_offset + a * wav.block_align, wav.data_offset + b * wav.block_align
        out[lo:hi] = _wav_fill(wav, a, b, fill)
        seconds += (b - a) / wav.rate
    return RedactedAudio(bytes(out), "wav", seconds)


def _wav_fill(wav: _WavLayout, a: int, b: int, fill: Fill) -> bytes:
    """Frames a..b of silence or tone, coded like the file's samples (all channels)."""
    n = (b - a) * wav.channels
    if fill == "silence":
        quiet = {_ALAW: 0xD5, _MULAW: 0xFF}.get(wav.tag, 0x80 if (wav.tag == _PCM and wav.bits == 8) else 0x00)
        return bytes([quiet]) * (n * wav.bits // 8)
    x = np.repeat(_tone(a, b, wav.rate), wav.channels)  # interleaved: every channel the same
    if wav.tag == _FLOAT:
        return x.astype("<f4" if wav.bits == 32 else "<f8").tobytes()
    if wav.tag in (_ALAW, _MULAW):
        return (encode_alaw if wav.tag == _ALAW else encode_mulaw)(float_to_int16(x))
    if wav.bits == 8:
        return (np.round(x * 127) + 128).astype(np.uint8).tobytes()
    if wav.bits == 16:
        return float_to_int16(x).tobytes()
    ints = np.round(x.astype(np.float64) * (2 ** (wav.bits - 1) - 1)).astype("<i4")
    if wav.bits == 32:
        return ints.tobytes()
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # 24-bit: the three low bytes


# ---- anything else: decoded, written as FLAC ----------------------------------------------

def _flac_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """(n_channels, n_samples) float32 -> a 16-bit FLAC file."""
    import av

    n_ch = pcm.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(n_ch) or av.AudioLayout(n_ch).name
    interleaved = float_to_int16(pcm.T.reshape(-1))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout=layout)
        stream.format = "s16"
        step = 4096 * n_ch
        for i in range(0, interleaved.size, step):
            chunk = interleaved[i:i + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = i // n_ch
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
