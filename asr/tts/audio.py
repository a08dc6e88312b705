"""PCM helpers for synthesized and received audio: resampling and the encodings Riva
clients ask for (16-bit linear PCM, G.711 mu-law and A-law, Ogg Opus)."""

from __future__ import annotations

import io

import numpy as np


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 at `source_rate` -> mono float32 at `target_rate` (FFmpeg's resampler via PyAV)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if source_rate == target_rate or audio.size == 0:
        return audio
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = source_rate
    frame.pts = 0
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def encode_mulaw(samples: np.ndarray) -> bytes:
    """int16 -> G.711 mu-law bytes."""
    bias, clip = 0x84, 32635
    s = samples.astype(np.int32)
    sign = (s < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(s), clip) + bias
    exp = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8).tobytes()


def encode_alaw(samples: np.ndarray) -> bytes:
    """int16 -> G.711 A-law bytes."""
    s = samples.astype(np.int32) >> 3  # 13-bit magnitude domain
    sign = np.where(s >= 0, 0x80, 0x00)
    mag = np.minimum(np.where(s >= 0, s, -s - 1), 0x0FFF)
    seg = np.zeros_like(mag)
    for i in range(1, 8):
        seg = np.where(mag >= (1 << (i + 4)), i, seg)
    mant = np.where(seg == 0, mag >> 1, mag >> seg) & 0x0F
    return (((sign | (seg << 4) | mant) ^ 0x55) & 0xFF).astype(np.uint8).tobytes()


def encode_ogg_opus(audio: np.ndarray, sample_rate: int, bitrate: int = 32000) -> bytes:
    """Mono float32 -> an Ogg Opus file (Opus runs at 48 kHz; the input is resampled)."""
    import av

    pcm = resample(audio, sample_rate, 48000)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48000, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(float_to_int16(pcm).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(float_to_int16(audio).tobytes())
    return buf.getvalue()
