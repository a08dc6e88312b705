"""Sentiment with a transformers checkpoint run by PyTorch (the `train` extra): for models
straight out of fine-tuning, before they are exported to ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from callsense.core.settings import Settings
from callsense.nlp.sentiment.base import SentimentModel, SentimentScore, SentimentUnavailable, sentiment_models


@sentiment_models.register("transformers")
class TransformersSentimentModel(SentimentModel):
    name = "transformers"

    def __init__(self, settings: Settings):
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError:
            raise SentimentUnavailable("the `transformers` sentiment backend needs PyTorch: pip install 'callsense[train]'") from None
        folder = settings.sentiment.model_dir
        if folder is None or not (Path(folder) / "config.json").is_file():
            raise SentimentUnavailable(
                f"CALLSENSE_SENTIMENT_MODEL_DIR must name a transformers checkpoint folder (config.json); got {folder}")
        self._torch = torch
        torch.set_num_threads(settings.cpu_threads)
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self._model = AutoModelForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
        id2label = self._model.config.id2label
        self.labels = [str(id2label[i]).lower() for i in range(len(id2label))]
        self._model_id = f"transformers:{Path(folder).name}"

    @property
    def model_id(self) -> str:
        return self._model_id

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        if not texts:
            return []
        enc = self._tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt")
        with self._torch.inference_mode():
            probs = self._model(**enc).logits.softmax(-1).numpy()
        return [SentimentScore(self.labels[int(p.argmax())], float(p.max()), dict(zip(self.labels, map(float, p)))) for p in probs]
