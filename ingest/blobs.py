"""Claim-check store: large audio is written once under its sha256 and events carry the name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from callsense.ingest.events import AudioRef


class BlobStore:
    def __init__(self, root: Path, inline_max_bytes: int):
        self.root = Path(root)
        self.inline_max_bytes = inline_max_bytes

    def _path(self, name: str) -> Path:
        return self.root / name[:2] / name

    def put(self, data: bytes, keep: bool = False) -> AudioRef:
        """Inline when small (unless `keep`: the bytes must outlive the event, e.g. a call's
        recording that the dashboard plays); otherwise store idempotently, return a reference."""
        if len(data) <= self.inline_max_bytes and not keep:
            return AudioRef(inline=data, n_bytes=len(data))
        name = hashlib.sha256(data).hexdigest()
        path = self._path(name)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(data)
            # fsync before rename: the event naming this blob may be committed right after.
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            tmp.replace(path)
        return AudioRef(blob=name, n_bytes=len(data))

    def get(self, ref: AudioRef) -> bytes:
        if ref.inline is not None:
            return ref.inline
        if ref.blob is None:
            return b""
        path = self._path(ref.blob)
        if not path.exists():
            raise FileNotFoundError(f"audio blob {ref.blob} is missing from {self.root} (is CALLSENSE_BLOB_DIR shared by all workers?)")
        return path.read_bytes()
