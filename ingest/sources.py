"""Where calls come from: recorded files become `CallRecorded`, a file played as a live
call becomes a paced series of `CallChunk`s."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from callsense.audio.decode import AudioLimits, collapse_dual_mono, decode_audio, probe_audio
from callsense.audio.g711 import encode_mulaw
from callsense.audio.resample import TARGET_RATE, resample
from callsense.core.errors import BadInput
from callsense.core.events import CallChunk, CallRecorded
from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore

AUDIO_SUFFIXES = {".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".webm", ".mp4"}
# Chats and emails (ingest/conversations.py). A folder is searched for the unambiguous ones;
# .txt and .log files are chat logs only when named on the command line.
TEXT_SUFFIXES = {".jsonl", ".ndjson", ".txt", ".log", ".chat", ".eml", ".mbox"}
FOLDER_TEXT_SUFFIXES = {".jsonl", ".ndjson", ".chat", ".eml", ".mbox"}


def call_id_for(path: Path, data: bytes) -> str:
    """Stable id from name and content: processing the same file twice updates one call."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)[:40] or "call"
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}"


def display_name(path: Path | str) -> str:
    """A file name that can be printed and stored: bytes that are not UTF-8 (kept by Python
    as surrogates) become U+FFFD instead of failing the call when it is written."""
    name = os.fsdecode(os.path.basename(os.fspath(path)))
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_audio_manifest(path: Path) -> bool:
    """JSON lines found in a folder are a chat only when they read like one (`speaker` and
    `text` on the first line); others are data such as a dataset's audio manifest
    (`callsense import-dataset`). Named on the command line, any file is an input."""
    if path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file():
        return False
    try:
        with open(path, "rb") as fh:
            first = fh.readline(64_000)
    except OSError:
        return False
    return not (b'"speaker"' in first and b'"text"' in first)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files and folders given on the command line -> inputs. Folders are searched for audio
    suffixes; whatever matches is an input even if it is not a regular file (a FIFO, a folder
    named x.wav): `read_input` refuses it with a reason instead of it vanishing silently.
    A folder given by name that holds no audio but has an audio suffix is such an input too."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES
                           or (q.suffix.lower() in FOLDER_TEXT_SUFFIXES and not _is_audio_manifest(q)))
            if not found and p.suffix.lower() in AUDIO_SUFFIXES:
                found = [p]
            out.extend(found)
        else:
            out.append(p)
    return out


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_input(path: Path, max_bytes: int) -> bytes:
    """The bytes of a recorded call, read only if `path` (symlinks resolved) is a regular
    file of at most `max_bytes`: a FIFO, device or directory is refused before it is opened,
    and at most max_bytes + 1 bytes are ever read (a file growing meanwhile is refused too)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size > max_bytes:
        raise BadInput(f"file too large: {st.st_size} bytes, more than the limit of {max_bytes} (CALLSENSE_MAX_INPUT_BYTES)")
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO since the stat, opening cannot hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadInput(f"not a regular file ({_kind(os.fstat(fd).st_mode)})")
        parts: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            parts.append(block)
            left -= len(block)
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(parts)
    if len(data) > max_bytes:
        raise BadInput(f"file too large: more than the limit of {max_bytes} bytes (CALLSENSE_MAX_INPUT_BYTES)")
    return data


def recorded_call(path: Path, blobs: BlobStore, agent_id: str | None = None, call_id: str | None = None,
                  settings: Settings | None = None) -> CallRecorded:
    """A recorded call's event. The file is checked (regular, size-capped) and its header
    probed (container, codec, rate, channels, duration within the limits) before its bytes
    are stored as a blob; anything refused raises BadInput with the reason."""
    settings = settings or Settings()
    data = read_input(path, settings.pipeline.max_input_bytes)
    probe_audio(data, AudioLimits.from_settings(settings))
    return CallRecorded(
        call_id=call_id or call_id_for(path, data), source_name=display_name(path),
        audio=blobs.put(data, keep=True), agent_id=agent_id,
    )


def live_chunks(
    path: Path, *, call_id: str, chunk_ms: int = 100, agent_id: str | None = None,
    encoding: str = "s16le", sample_rate: int = TARGET_RATE, realtime: bool = True,
) -> Iterator[CallChunk]:
    """Yield a file as a live call: interleaved PCM chunks at real-time pace."""
    settings = Settings()
    decoded = decode_audio(read_input(path, settings.pipeline.max_input_bytes), limits=AudioLimits.from_settings(settings))
    audio = collapse_dual_mono(decoded.channels)
    audio = resample(audio, TARGET_RATE, sample_rate)
    pcm16 = (np.clip(audio.T, -1, 1) * 32767).astype("<i2")  # (samples, channels)
    per_chunk = sample_rate * chunk_ms // 1000
    started = time.time()
    n_chunks = max(1, -(-pcm16.shape[0] // per_chunk))
    for seq in range(n_chunks):
        block = pcm16[seq * per_chunk:(seq + 1) * per_chunk]
        payload = encode_mulaw(block.reshape(-1)) if encoding == "mulaw" else block.tobytes()
        if realtime:
            # A chunk can only leave once its audio has been spoken.
            due = started + (seq + 1) * chunk_ms / 1000
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        yield CallChunk(call_id=call_id, seq=seq, sample_rate=sample_rate, channels=audio.shape[0],
                        encoding=encoding, pcm=payload, final=seq == n_chunks - 1, agent_id=agent_id,
                        source_name=display_name(path), stream_started_at=started)
