"""Loudness of a span of audio in dBFS: RMS relative to full scale (a square wave at +-1.0 is
0 dBFS, a full-scale sine -3 dBFS)."""

from __future__ import annotations

import math

import numpy as np

# Digital silence has no finite level; report it as this floor instead of -inf.
FLOOR_DBFS = -100.0


def dbfs(samples: np.ndarray) -> float | None:
    """RMS level of float samples in [-1, 1], in dBFS (None for no samples)."""
    if samples.size == 0:
        return None
    x = samples.astype(np.float64, copy=False)
    power = float(np.dot(x, x) / x.size)
    if power <= 0.0:
        return FLOOR_DBFS
    return max(FLOOR_DBFS, 10.0 * math.log10(power))


def span_dbfs(audio: np.ndarray, rate: int, start_s: float, end_s: float) -> float | None:
    """Level of audio[start_s:end_s] (seconds from audio[0]); None when the span holds no sample."""
    lo = max(0, int(round(start_s * rate)))
    hi = min(audio.size, int(round(end_s * rate)))
    if hi <= lo:
        return None
    return round(dbfs(audio[lo:hi]), 2)

