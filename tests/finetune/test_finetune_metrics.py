"""Metrics and their bootstrap intervals, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

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


# ------------------------------------------------------------- the libraries behind the figures


def test_point_figures_are_scikit_learns():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    from callsense.finetune.metrics import encode_labels, macro_f1

    rng = np.random.default_rng(3)
    truth = rng.choice(LABELS, 300).tolist()
    pred = [t if rng.random() < 0.6 else rng.choice(LABELS) for t in truth]
    pred = [p if p != "positive" else "neutral" for p in pred]  # a class never predicted: zero_division counts 0
    rep = classification_metrics(truth, pred, LABELS, OPTS)
    t, p = encode_labels(truth, LABELS), encode_labels(pred, LABELS)
    assert rep["confusion_matrix"] == confusion_matrix(t, p, labels=[0, 1, 2]).tolist()
    assert rep["macro_f1"]["value"] == pytest.approx(f1_score(t, p, average="macro", labels=[0, 1, 2], zero_division=0))
    assert macro_f1(t, p, 3) == pytest.approx(rep["macro_f1"]["value"])
    assert rep["accuracy"]["value"] == pytest.approx(accuracy_score(t, p))
    prec, rec, f1, _ = precision_recall_fscore_support(t, p, labels=[0, 1, 2], zero_division=0)
    for i, label in enumerate(LABELS):
        c = rep["per_class"][label]
        assert (c["precision"]["value"], c["recall"]["value"], c["f1"]["value"]) == pytest.approx((prec[i], rec[i], f1[i]), abs=1e-6)


def test_resampled_figures_match_scikit_learn_on_every_resample():
    """The bootstrap computes the figures of a resample from its counts in one vectorised step;
    they are scikit-learn's figures of that resample."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    from callsense.finetune.metrics import confusion_batch, prf

    rng = np.random.default_rng(5)
    t, p = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    p[p == 2] = 1  # class 2 never predicted
    ix = rng.integers(0, 40, (25, 40))
    bp, br, bf = prf(confusion_batch(t[ix], p[ix], 3))
    for r in range(len(ix)):
        prec, rec, f1, _ = precision_recall_fscore_support(t[ix[r]], p[ix[r]], labels=[0, 1, 2], zero_division=0)
        assert np.allclose(bp[r], prec) and np.allclose(br[r], rec) and np.allclose(bf[r], f1)
        assert bf[r].mean() == pytest.approx(f1_score(t[ix[r]], p[ix[r]], labels=[0, 1, 2], average="macro", zero_division=0))


def test_intervals_are_scipy_percentile_bootstraps_and_deterministic():
    from scipy.stats import bootstrap as scipy_bootstrap

    from callsense.finetune.metrics import ratio_interval

    rng = np.random.default_rng(7)
    num, den = rng.integers(0, 4, 50).astype(float), np.ones(50)
    ours = ratio_interval(num, den, OPTS)
    ref = scipy_bootstrap((num,), np.mean, n_resamples=OPTS.samples, confidence_level=OPTS.confidence, method="percentile",
                          rng=np.random.default_rng(OPTS.seed))
    assert (ours.low, ours.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert ours.value == pytest.approx(num.mean())
    assert ratio_interval(num, den, OPTS) == ours  # same seed, same interval
    assert ratio_interval(num, den, BootstrapOptions(400, 0.95, 2)) != ours


def test_slot_spans_and_f1_are_seqevals():
    from seqeval.metrics import f1_score, precision_score, recall_score

    from callsense.dialog.nlu.data.nemo_files import spans as runtime_spans
    from callsense.finetune.metrics import slot_f1, slot_spans

    gold = [["B-x", "I-x", "O", "B-y"], ["I-y", "I-y", "O"], ["B-a.b", "I-x", "O"]]
    pred = [["B-x", "I-x", "O", "O"], ["B-y", "I-y", "O"], ["B-a.b", "B-x", "O"]]
    rep = slot_f1(gold, pred)
    assert rep["f1"] == pytest.approx(f1_score(gold, pred)) and rep["precision"] == pytest.approx(precision_score(gold, pred))
    assert rep["recall"] == pytest.approx(recall_score(gold, pred)) and rep["gold_spans"] == 5
    # the assistant's runtime reads BIO the same way (conlleval: a stray I- starts a span)
    for tags in gold + pred + [["I-x", "B-x", "I-y", "I-y"]]:
        assert slot_spans(tags) == runtime_spans(tags)
    m = intent_slot_metrics(["A"] * 3, gold, ["A"] * 3, pred, OPTS)
    assert m["slot_f1"]["value"] == pytest.approx(f1_score(gold, pred))
    assert m["slot_precision"] == pytest.approx(precision_score(gold, pred))
