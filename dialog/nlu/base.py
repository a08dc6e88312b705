"""The NLU interface the dialog engine talks to, and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from callsense.core.settings import Settings
from callsense.core.registry import Registry

NO_MATCH = "nomatch.none"
NLU_ERROR = "jarvis_error"


@dataclass
class NluResult:
    intent: str  # a flow-level label such as "weather.rainfall_yes_no" or NO_MATCH
    confidence: float
    slots: dict[str, str] = field(default_factory=dict)  # slot name -> surface text ("location" -> "los angeles")
    tokens: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # BIO tag per token
    # what the dialog layer adds (understanding.py): "also_asked", the questions after the first
    extra: dict = field(default_factory=dict)


class NluUnavailable(RuntimeError):
    """The NLU service failed (down, timeout): the engine routes to `jarvis_error`."""


class NluBackend(ABC):
    name: str = "?"

    @abstractmethod
    def parse(self, text: str) -> NluResult:
        ...


nlu_backends: Registry[NluBackend] = Registry(
    "NLU backend",
    lazy={"embedded": "callsense.dialog.nlu.embedded", "riva": "callsense.dialog.nlu.riva",
          "keywords": "callsense.dialog.nlu.keywords",
          # The model registry's serving version lives with the registry (finetune).
          "serving": "callsense.finetune.serving_nlu"},
)


def create_nlu(settings: Settings) -> NluBackend:
    return nlu_backends.get(settings.dialog.nlu_backend)(settings)
