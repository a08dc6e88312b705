"""One resampler for the whole project (soxr): whole arrays and live streams."""

from __future__ import annotations

import numpy as np

TARGET_RATE = 16000


def resample(x: np.ndarray, source_rate: int, target_rate: int = TARGET_RATE) -> np.ndarray:
    """float32 `(samples,)` or `(channels, samples)` at `source_rate` -> the same shape at
    `target_rate`, in one soxr call for the whole array."""
    x = np.asarray(x, dtype=np.float32)
    if source_rate == target_rate or x.shape[-1] == 0:
        return x
    import soxr

    out = soxr.resample(x.T, source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).T)


class StreamResampler:
    """One channel's chunks at any rate -> float32 at `target_rate`, keeping filter state
    across chunks so chunk edges leave no clicks."""

    def __init__(self, source_rate: int, target_rate: int = TARGET_RATE):
        import soxr

        self._stream = None if source_rate == target_rate else soxr.ResampleStream(
            source_rate, target_rate, 1, dtype="float32", quality="HQ")

    def push(self, x: np.ndarray) -> np.ndarray:
        """float32 samples (int16 samples are scaled to [-1, 1) first)."""
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = np.asarray(x, dtype=np.float32)
        return x if self._stream is None else self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
