"""Default sentiment model: a fine-tuned MiniLM exported to int8 ONNX, tokenized with
`tokenizers` and run by onnxruntime (no torch, no transformers). The model file's sha256 is
checked against its manifest before loading."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from callsense.core.settings import Settings
from callsense.nlp.tokenizer import WordPieceTokenizer
from callsense.nlp.sentiment.base import (
    DEFAULT_MODEL_DIR, SentimentModel, SentimentScore, SentimentUnavailable, sentiment_models,
)


def load_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise SentimentUnavailable(f"no sentiment model at {folder} (manifest.json missing)")
    return json.loads(path.read_text())


LENGTH_BUCKET = 16  # rows per ONNX run when a batch is cut into runs of like-length sentences


@sentiment_models.register("onnx")
class OnnxSentimentModel(SentimentModel):
    name = "onnx"

    def __init__(self, settings: Settings, *, max_length: int = 128):
        import onnxruntime

        folder = Path(settings.sentiment.model_dir or DEFAULT_MODEL_DIR)
        manifest = load_manifest(folder)
        model_path = folder / "model.onnx"
        data = model_path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        expected = manifest.get("model_sha256") or manifest.get("sha256")
        if digest != expected:
            raise SentimentUnavailable(f"refusing {model_path}: sha256 {digest} differs from its manifest ({expected})")
        labels = json.loads((folder / "labels.json").read_text())
        self.labels = [labels[str(i)] if isinstance(labels, dict) else labels[i] for i in range(len(labels))]
        self._max_length = manifest.get("tokenizer", {}).get("max_length") or manifest.get("max_length", max_length)
        # The same character normalization the model saw in training (curly quotes, dashes).
        table = manifest.get("text_normalization", {}).get("applied_in_training", {})
        self._normalize = str.maketrans({k: v for k, v in table.items() if len(k) == 1})
        self._tokenizer = WordPieceTokenizer(folder, int(self._max_length), SentimentUnavailable)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = settings.cpu_threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._model_id = manifest.get("name", folder.name) + "@" + digest[:12]

    @property
    def model_id(self) -> str:
        return self._model_id

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        if not texts:
            return []
        clean = [t.translate(self._normalize) if t.strip() else "." for t in texts]
        if len(clean) <= LENGTH_BUCKET:
            probs = self._probs(clean)
        else:
            # A batch pads every row to its longest: sentences of like length go together
            # (a call's "Yes." and its 60-token complaint would otherwise cost alike).
            order = sorted(range(len(clean)), key=lambda i: len(clean[i]))
            probs = np.empty((len(clean), len(self.labels)), dtype=np.float32)
            for s in range(0, len(order), LENGTH_BUCKET):
                rows = order[s:s + LENGTH_BUCKET]
                probs[rows] = self._probs([clean[i] for i in rows])
        out = []
        for row in probs:
            i = int(row.argmax())
            out.append(SentimentScore(self.labels[i], float(row[i]), {l: float(p) for l, p in zip(self.labels, row)}))
        return out

    def _probs(self, texts: list[str]) -> np.ndarray:
        enc = self._tokenizer.encode(texts)
        logits = self._session.run(None, enc.feed(self._inputs))[0]
        z = logits - logits.max(axis=1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
