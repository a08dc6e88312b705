"""Metrics and their bootstrap intervals, checked against hand-computed values."""

from __future__ import annotations

import numpy as np

from callsense.finetune.metrics import (
    BootstrapOptions, classification_metrics, intent_slot_metrics, pipeline_sentiment_metrics, wer_metrics,
)

LABELS = ["negative", "neutral", "positive"]
OPTS = BootstrapOptions(samples=400, confidence=0.95, seed=1)


def test_classification_figures_and_intervals():
    truth = ["negative"] * 10 + ["neutral"] * 20 + ["positive"] * 10
    pred = ["negative"] * 8 + ["neutral"] * 2 + ["neutral"] * 20 + ["positive"] * 5 + ["neutral"] * 5
    rep = classification_metrics(truth, pred, LABELS, OPTS)
    assert rep["confusion_matrix"] == [[8, 2, 0], [0, 20, 0], [0, 5, 5]]
    neg, neu, pos = (rep["per_class"][l] for l in LABELS)
    assert neg["precision"]["value"] == 1.0 and abs(neg["recall"]["value"] - 0.8) < 1e-6
    assert abs(neu["precision"]["value"] - 20 / 27) < 1e-6 and pos["support"] == 10
    f1 = [2 * 0.8 / 1.8, 2 * (20 / 27) / (20 / 27 + 1), 2 * 0.5 / 1.5]
    assert abs(rep["macro_f1"]["value"] - np.mean(f1)) < 1e-6
    for d in (rep["macro_f1"], rep["accuracy"], neg["recall"]):
        assert d["low"] <= d["value"] <= d["high"] and d["high"] - d["low"] > 0.01
    perfect = classification_metrics(truth, truth, LABELS, OPTS)
    assert perfect["macro_f1"] == {"value": 1.0, "low": 1.0, "high": 1.0}


def test_intervals_shrink_with_more_data():
    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 2000):
        truth = rng.choice(LABELS, n).tolist()
        pred = [t if rng.random() < 0.7 else rng.choice(LABELS) for t in truth]
        m = classification_metrics(truth, pred, LABELS, OPTS)["macro_f1"]
        widths.append(m["high"] - m["low"])
    assert widths[1] < widths[0] / 3


def test_word_error_rate_matches_jiwer():
    import jiwer

    refs = ["the cat sat on the mat", "hello world", "a b c d"]
    hyps = ["the cat sat on mat", "hello there world", "a b c d"]
    rep = wer_metrics(refs, hyps, OPTS)
    assert abs(rep["wer"]["value"] - jiwer.wer(refs, hyps)) < 1e-6
    assert rep["deletions"] == 1 and rep["insertions"] == 1 and rep["words"] == 12


def test_intent_and_span_f1():
    gold_i = ["A", "A", "B"]
    gold_t = [["B-x", "I-x", "O"], ["O", "B-y"], ["B-x"]]
    pred_i = ["A", "B", "B"]
    pred_t = [["B-x", "I-x", "O"], ["O", "B-x"], ["B-x"]]
    rep = intent_slot_metrics(gold_i, gold_t, pred_i, pred_t, OPTS)
    assert abs(rep["intent_accuracy"]["value"] - 2 / 3) < 1e-6
    assert abs(rep["slot_f1"]["value"] - 2 / 3) < 1e-6  # 2 of 3 spans right, 3 predicted
    assert abs(rep["sentence_accuracy"]["value"] - 2 / 3) < 1e-6


def test_pipeline_sentiment_metric_is_mean_of_reference_minus_asr():
    ref = ["positive", "neutral", "negative", "positive"]
    asr = ["neutral", "neutral", "negative", "negative"]
    rep = pipeline_sentiment_metrics(ref, asr, OPTS)
    assert rep["pipeline_sentiment_metric"]["value"] == (1 + 0 + 0 + 2) / 4
    assert rep["agreement"]["value"] == 0.5 and rep["mean_abs_difference"]["value"] == 0.75
    assert rep["confusion_matrix"][2] == [1, 1, 0]  # reference positive: once negative, once neutral on ASR text
