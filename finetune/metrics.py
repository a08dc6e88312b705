"""Metrics with bootstrap confidence intervals: classification (per-class precision, recall,
F1, macro-F1, confusion matrix), word error rate, intent accuracy and slot span F1, and
TR-4910's pipeline sentiment metric. Every interval resamples the evaluation items with
replacement; paired comparisons resample the same items for both models."""

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
        return cls(settings.bootstrap_samples, settings.bootstrap_confidence, settings.bootstrap_seed)


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


def resample_indices(n: int, opts: BootstrapOptions) -> np.ndarray:
    rng = np.random.default_rng(opts.seed)
    return rng.integers(0, n, size=(opts.samples, n))


def bootstrap(stat: Callable[[np.ndarray], float], n: int, opts: BootstrapOptions, *,
              indices: np.ndarray | None = None) -> Interval:
    """Percentile interval of `stat(indices)` over bootstrap resamples of n items."""
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    point = float(stat(np.arange(n)))
    idx = resample_indices(n, opts) if indices is None else indices
    values = np.array([stat(row) for row in idx], dtype=np.float64)
    alpha = (1.0 - opts.confidence) / 2.0
    return Interval(point, float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha)))


# --------------------------------------------------------------------------- classification


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0)
    gold = cm.sum(axis=1)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, gold, out=np.zeros_like(tp), where=gold > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    return float(prf(confusion(y_true, y_pred, k))[2].mean())


def encode_labels(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    index = {l: i for i, l in enumerate(labels)}
    try:
        return np.array([index[v] for v in values], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not one of {', '.join(labels)}") from None


def _prf_batch(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """prf() over a stack of confusion matrices (B, k, k)."""
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(np.float64)
    pred, gold = cms.sum(axis=1), cms.sum(axis=2)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, gold, out=np.zeros_like(tp), where=gold > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], opts: BootstrapOptions) -> dict:
    """macro-F1 and accuracy, per-class precision/recall/F1 (each with its interval), the
    confusion matrix and the support. One confusion matrix per resample serves every figure."""
    t, p = encode_labels(y_true, labels), encode_labels(y_pred, labels)
    k, n = len(labels), len(t)
    cm = confusion(t, p, k)
    if n:
        cms = np.stack([confusion(t[ix], p[ix], k) for ix in resample_indices(n, opts)])
    else:
        cms = np.zeros((1, k, k), dtype=np.int64)
    bp, br, bf = _prf_batch(cms)
    acc_b = np.diagonal(cms, axis1=1, axis2=2).sum(axis=1) / max(1, n)
    alpha = (1.0 - opts.confidence) / 2.0

    def interval(point: float, values: np.ndarray) -> dict:
        return Interval(float(point), float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))).as_dict()

    precision, recall, f1 = prf(cm)
    per_class = {
        label: {"precision": interval(precision[i], bp[:, i]), "recall": interval(recall[i], br[:, i]),
                "f1": interval(f1[i], bf[:, i]), "support": int(cm[i].sum())}
        for i, label in enumerate(labels)
    }
    return {
        "n": n,
        "labels": list(labels),
        "macro_f1": interval(f1.mean(), bf.mean(axis=1)),
        "accuracy": interval(np.trace(cm) / max(1, n), acc_b),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "bootstrap": asdict(opts),
    }


# ------------------------------------------------------------------------------- ratio stats


def ratio_interval(num: np.ndarray, den: np.ndarray, opts: BootstrapOptions) -> Interval:
    """sum(num)/sum(den) over resampled items (WER, accuracy, span F1 as 2tp/(pred+gold))."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)

    def stat(ix):
        d = den[ix].sum()
        return num[ix].sum() / d if d else 0.0

    return bootstrap(stat, len(num), opts)


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


def intent_slot_metrics(gold_intents: Sequence[str], gold_tags: Sequence[Sequence[str]], pred_intents: Sequence[str],
                        pred_tags: Sequence[Sequence[str]], opts: BootstrapOptions) -> dict:
    from callsense.dialog.nlu.data.nemo_files import spans

    correct = np.array([g == p for g, p in zip(gold_intents, pred_intents)], dtype=np.float64)
    tp, n_pred, n_gold = [], [], []
    for g, p in zip(gold_tags, pred_tags):
        gs, ps = spans(list(g)), spans(list(p))
        tp.append(len(gs & ps))
        n_pred.append(len(ps))
        n_gold.append(len(gs))
    tp, n_pred, n_gold = map(np.array, (tp, n_pred, n_gold))
    exact = np.array([c and list(g) == list(p) for c, g, p in zip(correct, gold_tags, pred_tags)], dtype=np.float64)
    ones = np.ones_like(correct)
    per_intent: dict[str, list[int]] = {}
    for g, c in zip(gold_intents, correct):
        per_intent.setdefault(g, [0, 0])
        per_intent[g][0] += int(c)
        per_intent[g][1] += 1
    return {
        "n": len(correct),
        "intent_accuracy": ratio_interval(correct, ones, opts).as_dict(),
        "slot_f1": ratio_interval(2 * tp, n_pred + n_gold, opts).as_dict(),
        "slot_precision": float(tp.sum() / n_pred.sum()) if n_pred.sum() else 0.0,
        "slot_recall": float(tp.sum() / n_gold.sum()) if n_gold.sum() else 0.0,
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
