"""A finished call's original recording, one track per channel, for the Call page's players.

The store keeps no reference to a call's audio today, so it is found in this order:
1. a `call_audio` row (`callsense dashboard attach-audio CALL_ID FILE` puts one there);
2. the `calls.audio_blob` column, where the pipeline sets it (recordings stored by claim-check);
3. the claim-check of a recorded call: `callsense process`/`produce` name a call
   `<stem>-<first 10 hex of the file's sha256>` and store files over
   settings.pipeline.inline_audio_max_bytes in the blob store under that sha256, so the blob whose
   name starts with those 10 hex digits is the original file.
Recordings that travelled inline (small files) and live calls have no copy to find.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session

from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore
from callsense.core.events import AudioRef
from callsense.store.review import CallAudio
from callsense.store.schema import Call

_CALL_ID_SHA = re.compile(r"-([0-9a-f]{10})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class AudioSource:
    blob: str  # sha256 name in the blob store
    found_by: str  # attached | call record | claim-check


def _blob_path(root: Path, name: str) -> Path:
    return root / name[:2] / name


def locate_call_audio(engine: Engine, settings: Settings, call: Call) -> AudioSource | None:
    root = settings.resolved_blob_dir
    with Session(engine) as s:
        attached = s.get(CallAudio, call.id)
    if attached is not None and _blob_path(root, attached.blob).is_file():
        return AudioSource(attached.blob, "attached")
    named = getattr(call, "audio_blob", None)
    if named and _SHA256.match(named) and _blob_path(root, named).is_file():
        return AudioSource(named, "call record")
    m = _CALL_ID_SHA.search(call.id)
    if call.mode == "recorded" and m:
        prefix = m.group(1)
        for path in sorted((root / prefix[:2]).glob(f"{prefix}*")):
            if _SHA256.match(path.name):
                return AudioSource(path.name, "claim-check")
    return None


def read_blob(settings: Settings, source: AudioSource) -> bytes:
    return BlobStore(settings.resolved_blob_dir, 0).get(AudioRef(blob=source.blob, n_bytes=0))


def attach_audio(engine: Engine, settings: Settings, call_id: str, path: Path, by: str = "") -> AudioSource:
    """Copy a recording into the blob store and record it as the call's audio."""
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path} is empty")
    ref = BlobStore(settings.resolved_blob_dir, inline_max_bytes=-1).put(data)  # always a blob
    with Session(engine) as s:
        row = s.get(CallAudio, call_id) or CallAudio(call_id=call_id, blob=ref.blob)
        row.blob, row.source_name, row.n_bytes = ref.blob, path.name, len(data)
        row.attached_by, row.attached_at = by, time.time()
        s.add(row)
        s.commit()
    return AudioSource(ref.blob, "attached")


def split_channels(data: bytes, n_channels: int | None = None, decoder: str = "pyav") -> list[np.ndarray]:
    """Decode to 16 kHz float32, one array per channel. A call stored as one channel whose
    file has two alike channels (dual mono) gives one mixed track; a mono file stored as two
    channels (diarized: CALLSENSE_DIARIZE_MONO) gives its one track for each speaker."""
    from callsense.audio.decode import decode_audio

    decoded = decode_audio(data, decoder)
    chans = decoded.channels
    if n_channels == 1 and chans.shape[0] > 1:
        chans = chans.mean(axis=0, keepdims=True)
    elif n_channels and n_channels > 1 and chans.shape[0] == 1:
        chans = np.repeat(chans, n_channels, axis=0)
    return [np.ascontiguousarray(c) for c in chans]


def encode_mp3(samples: np.ndarray, rate: int = 16000, bitrate: int = 48000) -> bytes:
    """Mono float32 -> MP3 bytes (small enough to send a long call to the browser)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.bit_rate = bitrate
        stream.layout = "mono"
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
        step = 1152 * 8
        for i in range(0, max(pcm.size, 1), step):
            frame = av.AudioFrame.from_ndarray(pcm[i:i + step].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def channel_tracks(data: bytes, n_channels: int | None = None) -> list[bytes]:
    """The recording as one MP3 per channel."""
    return [encode_mp3(c) for c in split_channels(data, n_channels)]

