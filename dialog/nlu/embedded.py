"""The embedded NLU backend: a joint intent + slot model (MiniLM, int8 ONNX) run by
onnxruntime with the `transformers` tokenizer. No torch, no network.

The model folder (default: the one shipped in `models/`, or `settings.nlu_model_dir`) holds
`model.onnx`, `labels.json`, the tokenizer files and `manifest.json`; the model file's sha256
must match the manifest or the backend refuses to start. The model predicts training labels
(`find_the_store`, `unknown`, `B-location`, ...); `callsense.dialog.nlu.labels` maps them to
the flow labels and context slots that `NluBackend.parse` returns.

Build the model with `dialog/nlu/build_model.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from callsense.config import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluBackend, NluResult, NluUnavailable, nlu_backends

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "minilm-retail-joint-int8"
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
#: Words beyond this are not looked at (the tokenizer truncates at max_length sub-words anyway);
#: it keeps a pathological 1 MB input from costing a 1 MB tokenization.
MAX_WORDS = 128


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
        raise NluUnavailable(f"no NLU model at {folder} (manifest.json missing); build one with dialog/nlu/build_model.py")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise NluUnavailable(f"{path}: not valid JSON ({e})") from None


def verified_model_bytes(folder: Path, manifest: dict) -> tuple[bytes, str]:
    model_path = folder / manifest.get("model_file", "model.onnx")
    if not model_path.is_file():
        raise NluUnavailable(f"no NLU model file at {model_path}")
    data = model_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    expected = manifest.get("sha256")
    if digest != expected:
        raise NluUnavailable(
            f"refusing NLU model {model_path}: its sha256 {digest} differs from manifest.json ({expected}); "
            "the file is damaged or was replaced: rebuild it with dialog/nlu/build_model.py or restore the shipped copy"
        )
    return data, digest


def repair_bio(tags: list[str]) -> list[str]:
    """An `I-x` that does not continue an `x` span becomes `B-x` (read the way span F1 reads it)."""
    out, previous = [], labels.OUTSIDE
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
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        manifest = load_manifest(self.folder)
        data, digest = verified_model_bytes(self.folder, manifest)
        try:
            label_file = json.loads((self.folder / manifest.get("labels_file", "labels.json")).read_text())
            self.intents: list[str] = list(label_file["intents"])
            self.slots: list[str] = list(label_file["slots"])
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise NluUnavailable(f"{self.folder}: labels.json missing or malformed ({e})") from None
        self.max_length = int(manifest.get("tokenizer", {}).get("max_length", 64))
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any tokenizer failure means the folder is unusable
            raise NluUnavailable(f"{self.folder}: cannot load the tokenizer ({e})") from None
        if not self._tokenizer.is_fast:
            raise NluUnavailable(f"{self.folder}: the tokenizer must be a fast tokenizer (tokenizer.json)")
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
            raise NluUnavailable(f"{self.folder}/model.onnx: onnxruntime cannot load it ({e})") from None
        outputs = [o.name for o in self._session.get_outputs()]
        if outputs[:2] != ["intent_logits", "slot_logits"]:
            raise NluUnavailable(f"{self.folder}/model.onnx: outputs {outputs}, expected intent_logits and slot_logits")
        self.manifest = manifest
        self.model_id = f"{manifest.get('name', self.folder.name)}@{digest[:12]}"

    def predict(self, batch: Sequence[list[str]]) -> list[JointPrediction]:
        """Word lists (non-empty) -> predictions; one padded ONNX run for the whole batch."""
        if not batch:
            return []
        enc = self._tokenizer(list(batch), is_split_into_words=True, truncation=True, max_length=self.max_length,
                              padding=True, return_tensors="np")
        intent_logits, slot_logits = self._session.run(
            ["intent_logits", "slot_logits"],
            {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)},
        )
        z = intent_logits - intent_logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out = []
        for i, words in enumerate(batch):
            first, previous = [], None
            for pos, w in enumerate(enc.word_ids(i)):
                if w is not None and w != previous:
                    first.append(pos)
                previous = w
            tags = [self.slots[int(slot_logits[i, p].argmax())] for p in first]
            tags += [labels.OUTSIDE] * (len(words) - len(tags))  # words cut off by truncation
            k = int(probs[i].argmax())
            out.append(JointPrediction(list(words), self.intents[k], float(probs[i, k]), tags,
                                       {name: float(p) for name, p in zip(self.intents, probs[i])}))
        return out


@nlu_backends.register("embedded")
class EmbeddedNlu(NluBackend):
    """`parse(text)` -> flow intent label, confidence (softmax max) and context slots.

    Settings read (all optional): `nlu_model_dir` (default: the shipped model),
    `nlu_confidence_threshold` (below it the intent is `nomatch.none`; default 0.5; the engine's
    `nlu_min_confidence` is a floor on top of it) and `cpu_threads`."""

    name = "embedded"

    def __init__(self, settings: Settings | None = None, *, model_dir: Path | str | None = None,
                 confidence_threshold: float | None = None):
        settings = settings if settings is not None else Settings()
        folder = model_dir or getattr(settings, "nlu_model_dir", None) or DEFAULT_MODEL_DIR
        threshold = confidence_threshold
        if threshold is None:
            threshold = getattr(settings, "nlu_confidence_threshold", None)
        threshold = DEFAULT_CONFIDENCE_THRESHOLD if threshold is None else float(threshold)
        # the engine's general floor (settings.nlu_min_confidence) applies too
        self.confidence_threshold = max(threshold, float(getattr(settings, "nlu_min_confidence", 0.0) or 0.0))
        self.model = JointIntentSlotModel(Path(folder), threads=getattr(settings, "cpu_threads", 2))

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def parse(self, text: str) -> NluResult:
        return self.parse_many([text])[0]

    def parse_many(self, texts: Sequence[str]) -> list[NluResult]:
        words = [labels.tokenize(t if isinstance(t, str) else "")[:MAX_WORDS] for t in texts]
        todo = [i for i, w in enumerate(words) if w]
        predictions = dict(zip(todo, self.model.predict([words[i] for i in todo])))
        results = []
        for i in range(len(texts)):
            p = predictions.get(i)
            if p is None:  # nothing to understand (empty, punctuation, emoji only)
                results.append(NluResult(NO_MATCH, 0.0))
                continue
            tags = repair_bio(p.tags)
            intent = labels.to_flow_intent(p.intent)
            if p.confidence < self.confidence_threshold:
                intent = NO_MATCH
            results.append(NluResult(intent, p.confidence, labels.slots_from_tags(p.words, tags), p.words, tags))
        return results


def main(argv: list[str] | None = None) -> int:
    """Single-query check, as in NeMo's workflow: the intent and one tag per word.

        python -m callsense.dialog.nlu.embedded "where can i get the best pasta"
    """
    import argparse

    p = argparse.ArgumentParser(description="Parse queries with the embedded NLU model; print intent, slots and tags.")
    p.add_argument("queries", nargs="+")
    p.add_argument("--model-dir", default=None, help="model folder (default: the shipped model)")
    args = p.parse_args(argv)
    nlu = EmbeddedNlu(Settings(), model_dir=args.model_dir)
    for query in args.queries:
        r = nlu.parse(query)
        print(f"{query!r} -> {r.intent} ({r.confidence:.3f}) {r.slots}")
        print("   " + " ".join(f"{t}/{g}" for t, g in zip(r.tokens, r.tags)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
