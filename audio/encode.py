"""Compressed output: Ogg Opus for Riva clients that ask for it."""

from __future__ import annotations

import io

import numpy as np

from callsense.audio.pcm import float_to_int16
from callsense.audio.resample import resample


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
