"""The joint intent + slot model (MiniLM, int8 ONNX) run by onnxruntime with the
`tokenizers` library: no torch, no transformers, no network.

The model folder (default: the one shipped in `models/`) holds `model.onnx`, `labels.json`,
the tokenizer files and `manifest.json`; the model file's sha256 must match the manifest or
the model is refused. It predicts training labels (`find_the_store`, `unknown`,
`B-location`, ...); the assistant's NLU maps them to its flows' labels.

Build it with `callsense finetune intent-slot` (the model folder's README gives the command).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from callsense.nlp.tokenizer import WordPieceTokenizer

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "minilm-retail-joint-int8"
OUTSIDE = "O"


class IntentSlotUnavailable(RuntimeError):
    """The model cannot be used (missing or damaged files): one clear line."""


@dataclass
class JointPrediction:
    """One query as the model sees it: training labels, before any mapping."""

    words: list[str]
    intent: str  # training label (dict.intents.csv)
    confidence: float
    tags: list[str]  # BIO training label per word
    intent_probabilities: dict[str, float]


def load_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise IntentSlotUnavailable(f"no NLU model at {folder} (manifest.json missing); build one with `callsense finetune intent-slot`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise IntentSlotUnavailable(f"{path}: not valid JSON ({e})") from None


def verified_model_bytes(folder: Path, manifest: dict) -> tuple[bytes, str]:
    model_path = folder / manifest.get("model_file", "model.onnx")
    if not model_path.is_file():
        raise IntentSlotUnavailable(f"no NLU model file at {model_path}")
    data = model_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    expected = manifest.get("sha256")
    if digest != expected:
        raise IntentSlotUnavailable(
            f"refusing NLU model {model_path}: its sha256 {digest} differs from manifest.json ({expected}); "
            "the file is damaged or was replaced: rebuild it with `callsense finetune intent-slot` (see nlp/intent_slot/models/*/README.md) or restore the shipped copy"
        )
    return data, digest


def repair_bio(tags: list[str]) -> list[str]:
    """An `I-x` that does not continue an `x` span becomes `B-x` (read the way span F1 reads it)."""
    out, previous = [], OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


class JointIntentSlotModel:
    """The ONNX model and its tokenizer; predicts training labels for word lists."""

    def __init__(self, folder: Path, *, threads: int = 2):
        import onnxruntime

        self.folder = Path(folder)
        manifest = load_manifest(self.folder)
        data, digest = verified_model_bytes(self.folder, manifest)
        try:
            label_file = json.loads((self.folder / manifest.get("labels_file", "labels.json")).read_text())
            self.intents: list[str] = list(label_file["intents"])
            self.slots: list[str] = list(label_file["slots"])
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise IntentSlotUnavailable(f"{self.folder}: labels.json missing or malformed ({e})") from None
        self.max_length = int(manifest.get("tokenizer", {}).get("max_length", 64))
        self._tokenizer = WordPieceTokenizer(self.folder, self.max_length, IntentSlotUnavailable)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # One short query is a few milliseconds of work: spinning worker threads waiting for
        # the next one only steal CPU from the rest of the process (and double p50 on a busy machine).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = onnxruntime.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise IntentSlotUnavailable(f"{self.folder}/model.onnx: onnxruntime cannot load it ({e})") from None
        outputs = [o.name for o in self._session.get_outputs()]
        if outputs[:2] != ["intent_logits", "slot_logits"]:
            raise IntentSlotUnavailable(f"{self.folder}/model.onnx: outputs {outputs}, expected intent_logits and slot_logits")
        self.manifest = manifest
        self.model_id = f"{manifest.get('name', self.folder.name)}@{digest[:12]}"

    def predict(self, batch: Sequence[list[str]]) -> list[JointPrediction]:
        """Word lists (non-empty) -> predictions; one padded ONNX run for the whole batch."""
        if not batch:
            return []
        enc = self._tokenizer.encode([list(words) for words in batch], pretokenized=True)
        intent_logits, slot_logits = self._session.run(
            ["intent_logits", "slot_logits"], {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask})
        z = intent_logits - intent_logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out = []
        for i, words in enumerate(batch):
            first, previous = [], None
            for pos, w in enumerate(enc.word_ids[i]):
                if w is not None and w != previous:
                    first.append(pos)
                previous = w
            tags = [self.slots[int(slot_logits[i, p].argmax())] for p in first]
            tags += [OUTSIDE] * (len(words) - len(tags))  # words cut off by truncation
            k = int(probs[i].argmax())
            out.append(JointPrediction(list(words), self.intents[k], float(probs[i, k]), tags,
                                       {name: float(p) for name, p in zip(self.intents, probs[i])}))
        return out
