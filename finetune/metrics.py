"""Metrics with bootstrap confidence intervals: classification (per-class precision, recall,
F1, macro-F1, confusion matrix), word error rate, intent accuracy and slot span F1, and
TR-4910's pipeline sentiment metric.

The figures come from the libraries that define them: scikit-learn (`confusion_matrix`,
`precision_recall_fscore_support`, `f1_score`, `accuracy_score`), seqeval (BIO spans and
span precision / recall / F1, conlleval's reading of the tags), jiwer (word errors). The
intervals come from `scipy.stats.bootstrap` (percentile method): every interval resamples the
evaluation items with replacement, `BootstrapOptions.samples` times from
`numpy.random.default_rng(seed)`, so the same seed gives the same intervals, and paired
comparisons (the promotion gate) resample the same items for both models. Inside the
resampling, figures are computed from the resampled counts (confusion matrices, span
counts) in one vectorised step - the same formulas as scikit-learn's with
`zero_division=0`, checked against it in tests/finetune/test_finetune_metrics.py - because a
library call per resample would cost seconds per interval.

scikit-learn, scipy and seqeval come with the `eval`, `train` and `dashboard` extras and are
imported when a figure is computed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

SENTIMENT_VALUE = {"negative": -1, "neutral": 0, "positive": 1}


@dataclass(frozen=True)
class BootstrapOptions:
    samples: int = 1000
    confidence: float = 0.95
    seed: int = 13

    @classmethod
    def from_settings(cls, settings) -> "BootstrapOptions":
        return cls(settings.finetune.bootstrap_samples, settings.finetune.bootstrap_confidence, settings.finetune.bootstrap_seed)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def fmt(self, digits: int = 3, pct: bool = False) -> str:
        k = 100.0 if pct else 1.0
        unit = " %" if pct else ""
        return f"{self.value * k:.{digits}f}{unit} [{self.low * k:.{digits}f}, {self.high * k:.{digits}f}]"

    def as_dict(self) -> dict:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def bootstrap_bounds(statistic: Callable[[np.ndarray], np.ndarray], n: int, opts: BootstrapOptions) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval bounds of a vectorised statistic of n items: `statistic(ix)` takes
    index arrays of shape (..., n) (one resample per row) and returns shape (..., ) or
    (k, ...) for k figures at once. `scipy.stats.bootstrap` draws the resamples."""
    if n == 1:  # every resample is the item itself (scipy wants two or more)
        value = np.asarray(statistic(np.zeros((1, 1), dtype=np.int64)), dtype=np.float64)[..., 0]
        return value, value
    from scipy.stats import bootstrap as scipy_bootstrap

    res = scipy_bootstrap((np.arange(n),), lambda ix, axis=-1: statistic(ix), n_resamples=opts.samples, vectorized=True,
                          confidence_level=opts.confidence, method="percentile", rng=np.random.default_rng(opts.seed))
    return np.asarray(res.confidence_interval.low, dtype=np.float64), np.asarray(res.confidence_interval.high, dtype=np.float64)


def bootstrap(stat: Callable[[np.ndarray], float], n: int, opts: BootstrapOptions, *, vectorized: bool = False) -> Interval:
    """Percentile interval of `stat(indices)` over bootstrap resamples of n items. `stat`
    takes a 1-d index array; with `vectorized=True` it also takes (resamples, n) arrays and
    returns one value per row (much faster)."""
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    point = float(stat(np.arange(n)))
    if vectorized:
        statistic = stat
    else:
        def statistic(ix):
            rows = ix.reshape(-1, ix.shape[-1])
            return np.array([stat(r) for r in rows], dtype=np.float64).reshape(ix.shape[:-1])
    low, high = bootstrap_bounds(statistic, n, opts)
    return Interval(point, float(low), float(high))


# --------------------------------------------------------------------------- classification


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Rows: true class; columns: predicted class (scikit-learn's `confusion_matrix`)."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) == 0:
        return np.zeros((k, k), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=list(range(k)))


def confusion_batch(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices of many resamples at once: y_true, y_pred of shape (..., n) ->
    (..., k, k) counts (what `confusion` gives for each row)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    lead = y_true.shape[:-1]
    flat = (y_true * k + y_pred).reshape(-1, y_true.shape[-1])
    offsets = np.arange(flat.shape[0])[:, None] * (k * k)
    counts = np.bincount((flat + offsets).ravel(), minlength=flat.shape[0] * k * k)
    return counts.reshape(*lead, k, k)


def prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from confusion matrices (..., k, k), with
    scikit-learn's `zero_division=0`: an undefined ratio counts 0."""
    cm = np.asarray(cm)
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    pred, gold = cm.sum(axis=-2), cm.sum(axis=-1)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, gold, out=np.zeros_like(tp), where=gold > 0)
    denom = pred + gold
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    """Unweighted mean of the k classes' F1 (a class never seen nor predicted counts 0)."""
    from sklearn.metrics import f1_score

    if len(y_true) == 0:
        return 0.0
    return float(f1_score(y_true, y_pred, labels=list(range(k)), average="macro", zero_division=0))


def encode_labels(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {l: i for i, l in enumerate(labels)}
    try:
        return np.array([index[v] for v in values], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not one of {', '.join(labels)}") from None


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], opts: BootstrapOptions) -> dict:
    """macro-F1 and accuracy, per-class precision/recall/F1 (each with its interval), the
    confusion matrix and the support. One bootstrap gives every figure's interval."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    t, p = encode_labels(y_true, labels), encode_labels(y_pred, labels)
    k, n = len(labels), len(t)
    cm = confusion(t, p, k)
    if n:
        precision, recall, f1, _ = precision_recall_fscore_support(t, p, labels=list(range(k)), zero_division=0)
        point_macro, point_acc = macro_f1(t, p, k), float(accuracy_score(t, p))
    else:
        precision = recall = f1 = np.zeros(k)
        point_macro, point_acc = 0.0, 0.0

    def figures(ix):
        cms = confusion_batch(t[ix], p[ix], k)
        bp, br, bf = prf(cms)
        acc = np.diagonal(cms, axis1=-2, axis2=-1).sum(axis=-1) / ix.shape[-1]
        return np.concatenate([np.moveaxis(bp, -1, 0), np.moveaxis(br, -1, 0), np.moveaxis(bf, -1, 0),
                               bf.mean(axis=-1)[None], acc[None]])

    if n:
        low, high = bootstrap_bounds(figures, n, opts)
    else:
        low = high = np.zeros(3 * k + 2)

    def interval(point: float, row: int) -> dict:
        return Interval(float(point), float(low[row]), float(high[row])).as_dict()

    per_class = {
        label: {"precision": interval(precision[i], i), "recall": interval(recall[i], k + i),
                "f1": interval(f1[i], 2 * k + i), "support": int(cm[i].sum())}
        for i, label in enumerate(labels)
    }
    return {
        "n": n,
        "labels": list(labels),
        "macro_f1": interval(point_macro, 3 * k),
        "accuracy": interval(point_acc, 3 * k + 1),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "bootstrap": asdict(opts),
    }


# ------------------------------------------------------------------------------- ratio stats


def ratio_interval(num: np.ndarray, den: np.ndarray, opts: BootstrapOptions) -> Interval:
    """sum(num)/sum(den) over resampled items (WER, accuracy, span F1 as 2tp/(pred+gold))."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)

    def stat(ix):
        d = den[ix].sum(axis=-1)
        return np.divide(num[ix].sum(axis=-1), d, out=np.zeros_like(d), where=d != 0)

    return bootstrap(stat, len(num), opts, vectorized=True)


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> dict:
    """Per-utterance errors (substitutions + deletions + insertions) and reference words (jiwer)."""
    import jiwer

    errors, words, subs, dels, ins = [], [], 0, 0, 0
    for ref, hyp in zip(refs, hyps):
        ref_words = ref.split()
        if not ref_words:
            errors.append(len(hyp.split()))
            words.append(0)
            ins += len(hyp.split())
            continue
        out = jiwer.process_words(ref, hyp if hyp.strip() else "")
        e = out.substitutions + out.deletions + out.insertions
        subs, dels, ins = subs + out.substitutions, dels + out.deletions, ins + out.insertions
        errors.append(e)
        words.append(len(ref_words))
    return {"errors": np.array(errors), "words": np.array(words), "substitutions": subs, "deletions": dels, "insertions": ins}


def wer_metrics(refs: Sequence[str], hyps: Sequence[str], opts: BootstrapOptions) -> dict:
    we = word_errors(refs, hyps)
    return {"n": len(refs), "words": int(we["words"].sum()), "wer": ratio_interval(we["errors"], we["words"], opts).as_dict(),
            "substitutions": we["substitutions"], "deletions": we["deletions"], "insertions": we["insertions"],
            "per_utterance_errors": we["errors"].tolist()}


# ------------------------------------------------------------------------------ intent/slots


def slot_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """(start, end-exclusive, type) of every BIO span of one sentence, as seqeval reads them
    (conlleval: an `I-` that does not continue a span of its type starts one)."""
    from seqeval.metrics.sequence_labeling import get_entities

    return {(start, end + 1, kind) for kind, start, end in get_entities(list(tags))}


def slot_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro span precision / recall / F1 over all sentences (exact type and boundaries),
    seqeval's `precision_score` / `recall_score` / `f1_score`."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold, pred = [list(g) for g in gold], [list(p) for p in pred]
    n_gold = sum(len(slot_spans(g)) for g in gold)
    n_pred = sum(len(slot_spans(p)) for p in pred)
    if not gold:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "gold_spans": 0, "predicted_spans": 0}
    return {"precision": float(precision_score(gold, pred, zero_division=0)),
            "recall": float(recall_score(gold, pred, zero_division=0)),
            "f1": float(f1_score(gold, pred, zero_division=0)), "gold_spans": n_gold, "predicted_spans": n_pred}


def span_counts(gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> np.ndarray:
    """Per sentence: (spans right, spans predicted, gold spans), the items a span F1 resamples."""
    out = np.zeros((len(gold_tags), 3), dtype=np.float64)
    for i, (g, p) in enumerate(zip(gold_tags, pred_tags)):
        gs, ps = slot_spans(g), slot_spans(p)
        out[i] = (len(gs & ps), len(ps), len(gs))
    return out


def intent_slot_metrics(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]], pred_intents: Sequence[str],
                        pred_tags: Sequence[Sequence[str]], opts: BootstrapOptions) -> dict:
    from sklearn.metrics import accuracy_score

    correct = np.array([g == p for g, p in zip(gold_intents, pred_intents)], dtype=np.float64)
    counts = span_counts(gold_tags, pred_tags)
    tp, n_pred, n_gold = counts[:, 0], counts[:, 1], counts[:, 2]
    exact = np.array([c and list(g) == list(p) for c, g, p in zip(correct, gold_tags, pred_tags)], dtype=np.float64)
    ones = np.ones_like(correct)
    per_intent: dict[str, list[int]] = {}
    for g, c in zip(gold_intents, correct):
        per_intent.setdefault(g, [0, 0])
        per_intent[g][0] += int(c)
        per_intent[g][1] += 1
    slots = slot_f1(gold_tags, pred_tags)
    intent_acc = ratio_interval(correct, ones, opts)
    span_f1 = ratio_interval(2 * tp, n_pred + n_gold, opts)
    if len(correct):  # the point figures from the libraries; the bootstrap's own points are the same numbers
        intent_acc = Interval(float(accuracy_score(list(gold_intents), list(pred_intents))), intent_acc.low, intent_acc.high)
        span_f1 = Interval(slots["f1"], span_f1.low, span_f1.high)
    return {
        "n": len(correct),
        "intent_accuracy": intent_acc.as_dict(),
        "slot_f1": span_f1.as_dict(),
        "slot_precision": slots["precision"],
        "slot_recall": slots["recall"],
        "sentence_accuracy": ratio_interval(exact, ones, opts).as_dict(),
        "gold_spans": int(n_gold.sum()),
        "per_intent_accuracy": {k: round(v[0] / v[1], 4) for k, v in sorted(per_intent.items())},
    }


# --------------------------------------------------------------------- TR-4910 pipeline metric


def pipeline_sentiment_metrics(reference_labels: Sequence[str], asr_labels: Sequence[str], opts: BootstrapOptions) -> dict:
    """TR-4910: sentiment predicted on the reference (ground-truth) text vs on the ASR text of
    the same sentences, labels as numbers (negative -1, neutral 0, positive +1).
    PIPELINE_SENTIMENT_METRIC = mean(GT - ASR); also agreement and mean |difference|."""
    gt = np.array([SENTIMENT_VALUE[l] for l in reference_labels], dtype=np.float64)
    asr = np.array([SENTIMENT_VALUE[l] for l in asr_labels], dtype=np.float64)
    diff = gt - asr
    ones = np.ones_like(diff)
    labels = list(SENTIMENT_VALUE)
    return {
        "n": len(diff),
        "pipeline_sentiment_metric": ratio_interval(diff, ones, opts).as_dict(),
        "mean_abs_difference": ratio_interval(np.abs(diff), ones, opts).as_dict(),
        "agreement": ratio_interval((diff == 0).astype(np.float64), ones, opts).as_dict(),
        "confusion_matrix": confusion(encode_labels(reference_labels, labels), encode_labels(asr_labels, labels), 3).tolist(),
        "labels": labels,
    }


# ------------------------------------------------------------------------ paired comparison


def paired_delta(stat: Callable[[np.ndarray, str], float], n: int, opts: BootstrapOptions) -> Interval:
    """Interval of stat(ix, 'candidate') - stat(ix, 'serving') with both models scored on the
    same resampled items (a paired bootstrap)."""
    return bootstrap(lambda ix: stat(ix, "candidate") - stat(ix, "serving"), n, opts)
