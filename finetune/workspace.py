"""Where the fine-tuning loop keeps its files, and the facts every record carries: who ran
it, which code, on which hardware."""

from __future__ import annotations

import getpass
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from callsense.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


class FinetuneError(RuntimeError):
    """Something a person must fix (a bad source, an unknown version): one clear line."""


@dataclass
class Workspace:
    """Folders under ``settings.finetune.dir`` (CALLSENSE_FINETUNE_DIR) (default ``data_dir/finetune``) and the store."""

    settings: Settings

    @property
    def root(self) -> Path:
        return Path(self.settings.finetune.dir or Path(self.settings.data_dir) / "finetune")

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def audio_cache_dir(self) -> Path:
        return Path(self.settings.finetune.audio_cache_dir or self.root / "cache" / "audio")

    @cached_property
    def engine(self):
        from callsense.store.db import make_engine

        return make_engine(self.settings.resolved_database_url)


def current_user() -> str:
    for var in ("CALLSENSE_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def code_version() -> str:
    """The git commit of the checkout (with ``+dirty`` when files differ), else the package version."""
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if commit.returncode == 0 and commit.stdout.strip():
            dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "callsense " + version("callsense")
    except PackageNotFoundError:
        return "unknown"


def hardware() -> dict:
    info = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "gpu": None,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def utc_iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
