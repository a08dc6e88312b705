"""float32 <-> 16-bit PCM and WAV bytes."""

from __future__ import annotations

import io
import wave

import numpy as np


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def float_to_s16le(x: np.ndarray) -> bytes:
    return float_to_int16(x).tobytes()


def s16le_to_float(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<i2").astype(np.float32) / 32768.0


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """Mono float32 -> a 16-bit PCM WAV file's bytes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(float_to_int16(audio).tobytes())
    return buf.getvalue()
