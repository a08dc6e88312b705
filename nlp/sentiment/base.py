"""The sentiment model interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from callsense.core.settings import Settings
from callsense.core.registry import Registry

LABELS = ("negative", "neutral", "positive")
DEFAULT_MODEL_DIR = Path(__file__).parent / "models" / "minilm-meld-int8"


@dataclass(frozen=True)
class SentimentScore:
    label: str
    confidence: float
    probabilities: dict[str, float]


class SentimentUnavailable(RuntimeError):
    pass


class SentimentModel(ABC):
    name: str = "?"

    @property
    @abstractmethod
    def model_id(self) -> str:
        ...

    @abstractmethod
    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        ...


sentiment_models: Registry[SentimentModel] = Registry(
    "sentiment model",
    lazy={
        "onnx": "callsense.nlp.sentiment.onnx_model",
        "transformers": "callsense.nlp.sentiment.torch_model",
        "riva": "callsense.nlp.sentiment.riva_model",
        # The model registry's serving version lives with the registry (finetune).
        "serving": "callsense.finetune.serving_sentiment",
    },
)


def create_sentiment_model(settings: Settings) -> SentimentModel:
    return sentiment_models.get(settings.sentiment.backend)(settings)
