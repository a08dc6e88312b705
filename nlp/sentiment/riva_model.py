"""Sentiment through Riva text classification (`ClassifyText`), as TR-4910 runs it: a real
Riva server with a sentiment model, or `callsense riva-serve` (which answers with the
embedded model). `CALLSENSE_SENTIMENT_BACKEND=riva`, model `CALLSENSE_RIVA_SENTIMENT_MODEL`.

Labels are mapped to negative / neutral / positive by `CALLSENSE_RIVA_SENTIMENT_LABELS`
(`LABEL_0:negative,...`) or, without it, by name (`neg...`, `neu...`, `pos...`).
"""

from __future__ import annotations

from typing import Sequence

from callsense.core.settings import Settings
from callsense.core.errors import TransientError
from callsense.core.riva_client import RivaConnection, riva_modules
from callsense.nlp.sentiment.base import LABELS, SentimentModel, SentimentScore, SentimentUnavailable, sentiment_models

BATCH = 64


class RivaSentimentUnavailable(SentimentUnavailable, TransientError):
    """The Riva server did not answer in time, after retries."""


def parse_label_map(spec: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, label = item.rpartition(":")
        label = label.strip().lower()
        if not sep or label not in LABELS:
            raise SentimentUnavailable(f"bad CALLSENSE_RIVA_SENTIMENT_LABELS entry {item.strip()!r}: "
                                       f"write MODEL_LABEL:{'|'.join(LABELS)}")
        mapping[name.strip().lower()] = label
    return mapping


def label_of(class_name: str, mapping: dict[str, str]) -> str | None:
    name = class_name.strip().lower()
    if name in mapping:
        return mapping[name]
    for prefix, label in (("neg", "negative"), ("neu", "neutral"), ("pos", "positive")):
        if name.startswith(prefix):
            return label
    return None


@sentiment_models.register("riva")
class RivaSentimentModel(SentimentModel):
    name = "riva"

    def __init__(self, settings: Settings):
        self._riva = riva_modules(SentimentUnavailable)
        self.conn = RivaConnection(settings, setup_error=SentimentUnavailable)
        self.service = self._riva.NLPService(self.conn.auth)
        self.settings = settings
        self.model = settings.riva.sentiment_model
        self.mapping = parse_label_map(settings.riva.sentiment_labels)

    @property
    def model_id(self) -> str:
        return f"riva:{self.model}"

    def _classify(self, texts: list[str]):
        return self.conn.call_future(
            "text classification", self.model,
            lambda: self.service.classify_text(texts, self.model, self.settings.riva.language, future=True),
            unavailable=RivaSentimentUnavailable, permanent=SentimentUnavailable)

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        out: list[SentimentScore] = []
        texts = [t if t.strip() else "." for t in texts]
        for i in range(0, len(texts), BATCH):
            response = self._classify(texts[i:i + BATCH])
            if len(response.results) != len(texts[i:i + BATCH]):
                raise SentimentUnavailable(f"Riva at {self.conn.url} answered {len(response.results)} results "
                                           f"for {len(texts[i:i + BATCH])} texts (model {self.model})")
            for result in response.results:
                out.append(self._score(result))
        return out

    def _score(self, result) -> SentimentScore:
        probs = {label: 0.0 for label in LABELS}
        unknown = []
        for c in result.labels:
            label = label_of(c.class_name, self.mapping)
            if label is None:
                unknown.append(c.class_name)
                continue
            probs[label] = max(probs[label], float(c.score))
        if not any(probs.values()):
            raise SentimentUnavailable(
                f"Riva model {self.model} at {self.conn.url} answered labels {unknown} that name no sentiment: "
                "map them with CALLSENSE_RIVA_SENTIMENT_LABELS (e.g. LABEL_0:negative,LABEL_1:neutral,LABEL_2:positive)")
        top = max(probs, key=probs.get)
        return SentimentScore(top, probs[top], probs)
