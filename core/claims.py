"""Claim-check references: audio travels inside a message while small and by the name of
a content-addressed blob when large. Shared by the events and the blob store."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

# A blob's name is the sha256 of its content, nothing else: a path in a message is never read.
BLOB_NAME = re.compile(r"[0-9a-f]{64}")


def sha256_of(path: Path, _chunk: int = 1 << 20) -> str:
    """A file's content hash, read in pieces (model files are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_chunk):
            h.update(block)
    return h.hexdigest()


class ClaimModel(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", frozen=True)


class AudioRef(ClaimModel):
    """Bytes inline, or the sha256 name of a blob in the shared blob store (claim-check)."""

    inline: bytes | None = None
    blob: str | None = None
    n_bytes: int

    @field_validator("blob")
    @classmethod
    def _content_hash_only(cls, v: str | None) -> str | None:
        if v is not None and not BLOB_NAME.fullmatch(v):
            raise ValueError("a blob name is the sha256 of its content (64 hex digits)")
        return v
