"""Fixtures for the Riva tests (star-imported by the conftest of each folder that has them): settings and a `riva.client.Auth` pointing at the session's
riva-serve (`riva_server` in tests/conftest.py), and helpers to read the shared test audio."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from callsense.core.settings import Settings


@pytest.fixture(scope="session")
def riva_url(riva_server) -> str:
    return riva_server.address


@pytest.fixture(scope="session")
def riva_settings(riva_url: str) -> Settings:
    return Settings(riva_url=riva_url, riva_retries=1, riva_retry_backoff_s=0.1, riva_timeout_s=120)


@pytest.fixture(scope="session")
def riva_auth(riva_url: str):
    import riva.client

    auth = riva.client.Auth(uri=riva_url)
    yield auth
    auth.channel.close()


@pytest.fixture(scope="session")
def manifest(shared_audio: Path) -> list[dict]:
    return [json.loads(line) for line in (shared_audio / "manifest.jsonl").read_text().splitlines() if line.strip()]


def _normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces: what 'the same words' compares."""
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower().replace("-", " ")).split())


@pytest.fixture(scope="session")
def normalize():
    return _normalize


@pytest.fixture(scope="session")
def shared_clip(shared_audio: Path):
    """name -> (16 kHz float32 mono of the file's first channel, reference text)."""
    from callsense.audio.decode import decode_audio

    refs = {}
    for line in (shared_audio / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["channel"] in (None, 0):
            refs[item["audio"]] = item["text"]

    def load(name: str) -> tuple[np.ndarray, str]:
        channels = decode_audio((shared_audio / name).read_bytes()).channels
        return np.ascontiguousarray(channels[0]), refs.get(name, "")

    return load
