"""Hot reload: a long-running process (a pipeline worker, the assistant) asks the registry
every `serving_reload_s` seconds which version of a model serves; when it changed, the new
version is loaded in a background thread and swapped in atomically, so scoring never waits
for a load and never sees half a model. A version that fails to load is logged once and
skipped; the loaded model keeps serving.

The check is one indexed query on `model_versions`, cheap enough to run between batches.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Generic, TypeVar

from sqlalchemy import select
from sqlmodel import Session

from callsense.store.registry_tables import ModelVersion

log = logging.getLogger("callsense.serving")
T = TypeVar("T")


def serving_version(engine, name: str) -> tuple[int, Path] | None:
    with Session(engine) as s:
        row = s.exec(select(ModelVersion.version, ModelVersion.artifact_dir)
                     .where(ModelVersion.name == name, ModelVersion.status == "serving")).first()
    return (int(row[0]), Path(row[1])) if row else None


class ServingWatcher(Generic[T]):
    """Holds the loaded serving model of `name`; `current()` returns it (after starting a
    reload in the background when the registry names another version)."""

    def __init__(self, engine, name: str, load: Callable[[Path | None], T], *, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.engine, self.name, self._load, self.interval_s, self._clock = engine, name, load, interval_s, clock
        self._lock = threading.Lock()
        self._loading: threading.Thread | None = None
        self._failed: set[int] = set()
        found = self._lookup()
        # (version, model) in one reference: a reader sees the old pair or the new one, never a mix.
        self._current: tuple[int | None, T] = (found[0] if found else None, load(found[1] if found else None))
        self._checked = clock()
        self.reloads = 0

    @property
    def version(self) -> int | None:
        return self._current[0]

    @property
    def model(self) -> T:
        return self._current[1]

    def _lookup(self) -> tuple[int, Path] | None:
        try:
            return serving_version(self.engine, self.name)
        except Exception as e:  # noqa: BLE001 - a store hiccup must not stop scoring
            log.warning("cannot read the model registry (%s); keeping the loaded %s model", e, self.name)
            return None

    def current(self) -> T:
        return self.current_with_version()[1]

    def current_with_version(self) -> tuple[int | None, T]:
        now = self._clock()
        if now - self._checked >= self.interval_s:
            self._checked = now
            self.refresh(block=False)
        return self._current

    def refresh(self, block: bool = True) -> bool:
        """Check the registry now; load a new serving version (waiting for it when `block`).
        True when a new version was swapped in."""
        found = self._lookup()
        if not found or found[0] == self.version or found[0] in self._failed:
            return False
        with self._lock:
            if self._loading is not None and self._loading.is_alive():
                thread = self._loading
            else:
                thread = threading.Thread(target=self._swap, args=found, name=f"reload-{self.name}", daemon=True)
                self._loading = thread
                thread.start()
        if block:
            thread.join()
            return self.version == found[0]
        return False

    def _swap(self, version: int, folder: Path) -> None:
        try:
            model = self._load(folder)
        except Exception as e:  # noqa: BLE001 - any load failure: keep serving the old model
            self._failed.add(version)
            log.error("cannot load %s v%d from %s (%s); still serving v%s", self.name, version, folder, e, self.version)
            return
        self._current = (version, model)
        self.reloads += 1
        log.info("now serving %s v%d (%s)", self.name, version, folder)
