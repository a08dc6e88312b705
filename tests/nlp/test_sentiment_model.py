"""The shipped sentiment model, scored on MELD dev (used only to choose the epoch, never
trained on), through onnxruntime without torch."""

import csv
import json
import shutil

import pytest

from callsense.config import Settings
from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR, SentimentUnavailable, create_sentiment_model


@pytest.fixture(scope="module")
def model():
    return create_sentiment_model(Settings())


def macro_f1(gold, pred, labels=("negative", "neutral", "positive")):
    f1s = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, pred))
        fp = sum(p == label != g for g, p in zip(gold, pred))
        fn = sum(g == label != p for g, p in zip(gold, pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


def test_macro_f1_on_meld_dev(model, shared_data):
    with open(shared_data / "sentiment" / "meld" / "dev.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pred = []
    for i in range(0, len(rows), 64):
        pred += [s.label for s in model.score([r["Utterance"] for r in rows[i:i + 64]])]
    score = macro_f1([r["Sentiment"] for r in rows], pred)
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    assert score >= 0.64, score
    # The figure recorded in the model's manifest is what this run reproduces.
    assert abs(score - manifest["metrics"]["dev_onnx_int8"]["macro_f1"]) < 0.002


def test_obvious_sentences(model):
    out = model.score(["I am really angry, this is the third time my order is late.",
                       "Thank you so much, that was very helpful!"])
    assert [o.label for o in out] == ["negative", "positive"]
    assert all(0.34 < o.confidence <= 1 for o in out)


def test_tampered_model_is_refused(tmp_path):
    copy = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(SentimentUnavailable, match="sha256"):
        create_sentiment_model(Settings(sentiment_model_dir=copy))
