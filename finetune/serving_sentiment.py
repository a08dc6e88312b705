"""The `serving` sentiment backend: whatever version the model registry says serves
`sentiment` (`callsense models promote|rollback`), reloaded without a restart.

It wraps the `onnx` backend: at start it loads the serving version's folder (or the shipped
model when the registry is empty), then every `serving_reload_s` seconds it asks the
registry again and swaps in a newly promoted version in the background
(`callsense.finetune.serving.ServingWatcher`). Stored sentences name the version that
scored them: `model_id` is `sentiment@vN:<model name>@<sha>`.

Select it with `CALLSENSE_SENTIMENT_BACKEND=serving`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from callsense.core.settings import Settings
from callsense.nlp.sentiment.base import SentimentModel, SentimentScore, sentiment_models

REGISTRY_NAME = "sentiment"


@sentiment_models.register("serving")
class ServingSentimentModel(SentimentModel):
    name = "serving"

    def __init__(self, settings: Settings, *, engine=None):
        from callsense.finetune.registry import ModelRegistry
        from callsense.finetune.serving import ServingWatcher
        from callsense.finetune.workspace import Workspace
        from callsense.nlp.sentiment.onnx_model import OnnxSentimentModel

        ws = Workspace(settings)
        if engine is not None:
            ws.__dict__["engine"] = engine
        ModelRegistry(ws).ensure_builtin(REGISTRY_NAME)  # a fresh store: the shipped model is v1

        def load(folder: Path | None) -> SentimentModel:
            return OnnxSentimentModel(settings.model_copy(update={"sentiment_model_dir": folder or settings.sentiment.model_dir}))

        self.watcher = ServingWatcher(ws.engine, REGISTRY_NAME, load, interval_s=settings.finetune.serving_reload_s)
        self._last_id: str | None = None

    def _id_of(self, model: SentimentModel, version: int | None) -> str:
        return (f"{REGISTRY_NAME}@v{version}:" if version is not None else "") + model.model_id

    @property
    def model_id(self) -> str:
        """The model that scored the last batch (the stage reads it right after `score`)."""
        if self._last_id is None:
            version, model = self.watcher.current_with_version()
            return self._id_of(model, version)
        return self._last_id

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        version, model = self.watcher.current_with_version()
        self._last_id = self._id_of(model, version)
        return model.score(texts)
