"""The `serving` NLU backend: the assistant's embedded joint intent/slot model, taken from
whatever version the model registry says serves `intent-slot`, and swapped without a
restart when a new version is promoted or rolled back (`ServingWatcher`).

Select it with `CALLSENSE_NLU_BACKEND=serving`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from callsense.core.settings import Settings
from callsense.dialog.nlu.base import NluBackend, NluResult, nlu_backends

REGISTRY_NAME = "intent-slot"


@nlu_backends.register("serving")
class ServingNlu(NluBackend):
    name = "serving"

    def __init__(self, settings: Settings | None = None):
        from callsense.dialog.nlu.embedded import EmbeddedNlu
        from callsense.finetune.registry import ModelRegistry
        from callsense.finetune.serving import ServingWatcher
        from callsense.finetune.workspace import Workspace

        settings = settings or Settings()
        ws = Workspace(settings)
        ModelRegistry(ws).ensure_builtin(REGISTRY_NAME)

        def load(folder: Path | None) -> EmbeddedNlu:
            return EmbeddedNlu(settings, model_dir=folder)

        self.watcher = ServingWatcher(ws.engine, REGISTRY_NAME, load, interval_s=settings.finetune.serving_reload_s)

    @property
    def model_id(self) -> str:
        version, nlu = self.watcher.current_with_version()
        return (f"{REGISTRY_NAME}@v{version}:" if version is not None else "") + nlu.model_id

    def parse(self, text: str) -> NluResult:
        return self.watcher.current().parse(text)

    def parse_many(self, texts: Sequence[str]) -> list[NluResult]:
        return self.watcher.current().parse_many(texts)
