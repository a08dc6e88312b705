"""The sentiment stage: every sentence of every transcribed utterance gets a label."""

from __future__ import annotations

from typing import Sequence

from callsense.core.events import EventModel, ScoredUtterance, SentenceSentiment, TranscribedUtterance
from callsense.nlp.sentiment.base import SentimentModel


class SentenceScorer:
    name = "sentiment"
    inputs = ("transcripts",)

    def __init__(self, model: SentimentModel):
        self.model = model

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        utts = [e for e in events if isinstance(e, TranscribedUtterance)]
        texts = [s.text for u in utts for s in u.sentences]
        scores = iter(self.model.score(texts))
        out: list[EventModel] = []
        for u in utts:
            sentences = [
                s.model_copy(update={"sentiment": SentenceSentiment(label=sc.label, confidence=sc.confidence, model=self.model.model_id)})
                for s, sc in ((s, next(scores)) for s in u.sentences)
            ]
            data = u.model_dump(exclude={"kind", "sentences", "sentiment_model"})
            out.append(ScoredUtterance(**data, sentences=sentences, sentiment_model=self.model.model_id))
        return out
