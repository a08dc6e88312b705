"""The shipped sentiment model, scored on MELD dev (used only to choose the epoch, never
trained on), through onnxruntime without torch."""

import csv
import json
import shutil

import pytest

from callsense.core.settings import Settings
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


#: How far a run may land from the manifest's int8 figures. The int8 kernels onnxruntime
#: picks differ between CPUs (VNNI / AVX-512 / AVX2 / NEON accumulate and round differently),
#: and a few of the 1,109 dev sentences then change class: 0.6564 was measured where the
#: manifest, built on another CPU, says 0.6531. Int8 and fp32 of the same network already
#: disagree on 6 % of the sentences (`dev_int8_vs_fp32_prediction_agreement`) for a macro-F1
#: 0.0034 apart, so 0.015 covers kernel noise; a broken model (wrong labels order, wrong
#: tokenizer, truncated weights) is off by far more than that.
KERNEL_TOLERANCE = 0.015
#: Share of the dev sentences by which the count of each predicted label may move: int8
#: against fp32 moved them by up to 22 of 1,109 (2 %); twice that for other CPUs' kernels.
#: Negative and positive swapped would move them by 137.
CLASS_SHARE_TOLERANCE = 0.04
#: Whatever the CPU: the shipped model beats this by a wide margin (always "neutral" scores
#: 0.20 here, the same network with negative and positive swapped about 0.39).
MACRO_F1_FLOOR = 0.60


def test_macro_f1_on_meld_dev(model, shared_data):
    with open(shared_data / "sentiment" / "meld" / "dev.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    pred = []
    for i in range(0, len(rows), 64):
        pred += [s.label for s in model.score([r["Utterance"] for r in rows[i:i + 64]])]
    gold = [r["Sentiment"] for r in rows]
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    recorded = manifest["metrics"]["dev_onnx_int8"]
    assert len(rows) == manifest["training_data"]["dev_rows"]  # the dev set the figures are about

    score = macro_f1(gold, pred)
    assert score >= MACRO_F1_FLOOR, score
    # The manifest's figures are reproduced, up to the CPU's int8 kernels.
    assert abs(score - recorded["macro_f1"]) <= KERNEL_TOLERANCE, (score, recorded["macro_f1"])
    accuracy = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    assert abs(accuracy - recorded["accuracy"]) <= KERNEL_TOLERANCE, (accuracy, recorded["accuracy"])
    # Class by class too: how often each label is predicted (the confusion matrix's column
    # sums), so a model that trades one class for another cannot pass on the average.
    labels = recorded["confusion_matrix"]["rows_true_cols_pred"]
    counts = recorded["confusion_matrix"]["counts"]
    for j, label in enumerate(labels):
        expected = sum(row[j] for row in counts)
        assert abs(pred.count(label) - expected) <= CLASS_SHARE_TOLERANCE * len(rows), (label, pred.count(label), expected)


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
