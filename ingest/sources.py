"""Where calls come from: recorded files become `CallRecorded`, a file played as a live
call becomes a paced series of `CallChunk`s."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from callsense.ingest.blobs import BlobStore
from callsense.ingest.convert import TARGET_RATE, collapse_dual_mono, decode_audio
from callsense.ingest.errors import BadInput
from callsense.ingest.events import CallChunk, CallRecorded

AUDIO_SUFFIXES = {".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".mp4"}


def call_id_for(path: Path, data: bytes) -> str:
    """Stable id from name and content: processing the same file twice updates one call."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)[:40] or "call"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}"


def expand_inputs(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES))
        else:
            out.append(p)
    return out


def recorded_call(path: Path, blobs: BlobStore, agent_id: str | None = None, call_id: str | None = None) -> CallRecorded:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    return CallRecorded(
        call_id=call_id or call_id_for(path, data), source_name=path.name,
        audio=blobs.put(data, keep=True), agent_id=agent_id,
    )


def encode_mulaw(x: np.ndarray) -> np.ndarray:
    """int16 -> G.711 mu-law bytes (what telephony sends)."""
    bias, clip = 0x84, 32635
    s = x.astype(np.int32)
    sign = (s < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(s), clip) + bias
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    exp = np.clip(exp, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8)


def live_chunks(
    path: Path, *, call_id: str, chunk_ms: int = 100, agent_id: str | None = None,
    encoding: str = "s16le", sample_rate: int = TARGET_RATE, realtime: bool = True,
) -> Iterator[CallChunk]:
    """Yield a file as a live call: interleaved PCM chunks at real-time pace."""
    decoded = decode_audio(path.read_bytes())
    audio = collapse_dual_mono(decoded.channels)
    if sample_rate != TARGET_RATE:
        idx = np.arange(0, audio.shape[1], TARGET_RATE / sample_rate).astype(int)
        audio = audio[:, idx]
    pcm16 = (np.clip(audio.T, -1, 1) * 32767).astype("<i2")  # (samples, channels)
    per_chunk = sample_rate * chunk_ms // 1000
    started = time.time()
    n_chunks = max(1, -(-pcm16.shape[0] // per_chunk))
    for seq in range(n_chunks):
        block = pcm16[seq * per_chunk:(seq + 1) * per_chunk]
        payload = encode_mulaw(block.reshape(-1)).tobytes() if encoding == "mulaw" else block.tobytes()
        if realtime:
            # A chunk can only leave once its audio has been spoken.
            due = started + (seq + 1) * chunk_ms / 1000
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        yield CallChunk(call_id=call_id, seq=seq, sample_rate=sample_rate, channels=audio.shape[0],
                        encoding=encoding, pcm=payload, final=seq == n_chunks - 1, agent_id=agent_id,
                        source_name=path.name, stream_started_at=started)
