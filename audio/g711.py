"""G.711 mu-law and A-law, both directions, and raw live PCM -> int16."""

from __future__ import annotations

import numpy as np

from callsense.core.errors import BadInput


def _decode_tables() -> tuple[np.ndarray, np.ndarray]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    mulaw = np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    mag = (a & 0x0F) << 4
    mag = np.where(seg == 0, mag + 8, np.where(seg == 1, mag + 0x108, (mag + 0x108) << (seg - 1)))
    alaw = np.where(a & 0x80, mag, -mag).astype(np.int16)
    return mulaw, alaw


_MULAW, _ALAW = _decode_tables()


def pcm_to_int16(pcm: bytes, encoding: str) -> np.ndarray:
    """Raw bytes of a live call or a Riva request (`s16le`, `mulaw`, `alaw`) -> int16."""
    raw = np.frombuffer(pcm, dtype=np.uint8)
    if encoding == "mulaw":
        return _MULAW[raw]
    if encoding == "alaw":
        return _ALAW[raw]
    if encoding == "s16le":
        return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    raise BadInput(f"unsupported live encoding {encoding!r} (use s16le, mulaw or alaw)")


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
