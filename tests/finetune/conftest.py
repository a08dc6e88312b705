"""Fixtures of the fine-tuning tests: a workspace in a temporary data dir (real SQLite
store), and small slices of the shared reference data written as files."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.finetune.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(Settings(data_dir=tmp_path / "data", bootstrap_samples=300))


@pytest.fixture(scope="session")
def meld_dir(shared_data: Path) -> Path:
    return shared_data / "sentiment" / "meld"


@pytest.fixture(scope="session")
def snips_dir(shared_data: Path) -> Path:
    return shared_data / "nlu" / "snips"


@pytest.fixture(scope="session")
def audio_manifest(shared_data: Path) -> Path:
    return shared_data / "audio" / "manifest.jsonl"
