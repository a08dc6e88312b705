"""The promotion gate: a candidate replaces the serving model only when it is better on the
same holdout, by more than chance.

Both models score the same holdout rows exactly as they would serve (sentiment: the ONNX
runtime on single sentences; intent-slot: the assistant's runtime; asr: the engine). A
paired bootstrap resamples the rows, scores both models on each resample and takes the
interval of the difference (candidate - serving; for WER, serving - candidate). The gate
promotes only when the whole interval lies above `promotion_min_delta` (0 by default);
otherwise it says why and the serving model stays.

Honesty checks before any scoring: the holdout may not be a split the candidate was trained
or tuned on (its dataset version's train or dev), and holdout texts may not occur in the
candidate's training data.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from callsense.finetune.datasets import DatasetStore, DatasetVersion, text_key
from callsense.finetune.metrics import BootstrapOptions, Interval, bootstrap, confusion_batch, encode_labels, prf
from callsense.finetune.registry import ModelRecord, ModelRegistry
from callsense.finetune.runs import Progress, SilentProgress
from callsense.finetune.workspace import FinetuneError, Workspace

METRIC_OF = {"sentiment": "macro_f1", "intent-slot": "intent_slot_score", "asr": "wer"}
KIND_OF = {"sentiment": "sentiment", "intent-slot": "intent-slot", "asr": "asr"}


@dataclass
class GateDecision:
    name: str
    candidate: int
    serving: int | None
    promoted: bool
    reason: str
    metric: str = ""
    holdout: str = ""
    n: int = 0
    candidate_score: dict | None = None
    serving_score: dict | None = None
    delta: dict | None = None
    min_delta: float = 0.0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


# A holdout of which at least this share of the texts of LONG_TEXT_WORDS words or more is in
# the serving model's training data is refused. (Short lines - "What?", "Okay." - recur in any
# conversation data: they only make a note.)
SERVING_REFUSE_SHARE = 0.2
LONG_TEXT_WORDS = 4


def is_training_overlap(o: dict) -> bool:
    return o["role"] == "trained" and o["long_overlap"] > 0 and o["long_overlap"] >= SERVING_REFUSE_SHARE * o["long_n"]


def split_error(ds: DatasetVersion, split: str) -> str:
    counts = ds.counts()
    have = ", ".join(f"{s} ({n} rows)" for s, n in counts.items() if n) or "none"
    what = "has no rows in split" if split in counts else "has no split"
    return f"dataset {ds.id} {what} '{split}'; splits with rows: {have}"


def parse_holdout(ref: str | None, candidate: ModelRecord, store: DatasetStore) -> tuple[DatasetVersion, str]:
    """`DATASET[:SPLIT]` (default split test); default dataset: the candidate's own version."""
    if ref:
        ds_ref, _, split = ref.partition(":")
    else:
        if not candidate.dataset_version:
            raise FinetuneError(f"{candidate.label} has no dataset version: give the holdout (--holdout DATASET[:test])")
        ds_ref, split = candidate.dataset_version, "test"
    return store.get(ds_ref), split or "test"


def honesty_check(candidate: ModelRecord, holdout: DatasetVersion, split: str, rows: list[dict], store: DatasetStore) -> list[str]:
    """Reasons the holdout cannot judge the candidate (empty: fine)."""
    problems = []
    if candidate.dataset_version == holdout.id and split in ("train", "dev"):
        problems.append(f"the holdout {holdout.id}:{split} is a split {candidate.label} was {'trained' if split == 'train' else 'tuned'} on")
    if candidate.dataset_version and candidate.dataset_version != holdout.id:
        try:
            trained = store.get(candidate.dataset_version)
        except FinetuneError:
            trained = None
        if trained is not None:
            seen = {text_key(r) for r in trained.rows("train") + trained.rows("dev")}
            overlap = sum(1 for r in rows if text_key(r) in seen)
            if overlap:
                problems.append(f"{overlap} of {len(rows)} holdout texts are in {candidate.label}'s training data ({trained.id})")
    return problems


CLEAN_HOLDOUT_HINT = ("build a clean holdout from rows neither model was trained or tuned on, e.g. reviews made after the "
                      "serving model was trained: `callsense data build KIND --source review@test --name holdout`, or a file "
                      "it never saw: `--source meld:NEW.csv@test`; then `--holdout holdout:test`")


def _file_keys(path: Path, kind: str) -> set[str] | None:
    try:
        if kind == "sentiment":
            from callsense.finetune.sources import SourceSpec, read_meld

            return {text_key(r) for r in read_meld(SourceSpec(str(path), "meld", Path(path).resolve(), None)).rows}
    except Exception:  # noqa: BLE001 - an unreadable file: no texts to compare
        return None
    return None


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_lineage(model: ModelRecord, store: DatasetStore, holdout: DatasetVersion | None = None) -> list[dict]:
    """What a model was trained or tuned on, as far as its records say: its registry dataset
    version (train, dev), the dataset version its manifest names, and for a shipped model the
    files its manifest's `training_data` names by sha256 (found by that hash among the paths
    of its rebuild command and the holdout's source files). One entry per source:
    {role: trained|tuned, what, keys (normalised texts) or None, sha256}."""
    out: list[dict] = []
    manifest = {}
    try:
        manifest = json.loads((Path(model.artifact_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    versions = [model.dataset_version, (manifest.get("training") or {}).get("dataset_version"), manifest.get("dataset_version")]
    for ref in dict.fromkeys(v for v in versions if v):
        try:
            ds = store.get(ref)
        except FinetuneError:
            continue
        out.append({"role": "trained", "what": f"dataset {ds.id}:train", "keys": {text_key(r) for r in ds.rows("train")}, "sha256": None})
        out.append({"role": "tuned", "what": f"dataset {ds.id}:dev", "keys": {text_key(r) for r in ds.rows("dev")}, "sha256": None})
    td = manifest.get("training_data") or {}
    if td:
        import shlex

        paths = []
        try:
            args = shlex.split(manifest.get("rebuild_command") or "")
        except ValueError:
            args = []
        paths += [Path(a) for a in args if a.endswith((".csv", ".tsv", ".jsonl"))]
        if holdout is not None:
            for src in holdout.manifest.get("sources", []):
                paths += [Path(p) for p in (src.get("files") or {})]
        by_sha: dict[str, Path] = {}
        for p in dict.fromkeys(paths):
            if p.is_file():
                by_sha.setdefault(_sha256(p), p)
        for role, file_key, sha_key in (("trained", "train_file", "train_sha256"), ("tuned", "dev_file", "dev_sha256")):
            sha = td.get(sha_key)
            if not sha:
                continue
            found = by_sha.get(sha)
            out.append({"role": role, "what": f"{td.get(file_key) or 'its training file'} (sha256 {sha[:12]})",
                        "keys": _file_keys(found, model.kind) if found else None, "sha256": sha})
    return out


def lineage_overlap(model: ModelRecord, holdout: DatasetVersion | None, rows: list[dict], store: DatasetStore) -> list[dict]:
    """For each source of the model's lineage that shares rows with `rows`: {role, what,
    overlap, n, examples}. Rows from a source file whose sha256 is a training file's count
    whole."""
    keys = [text_key(r) for r in rows]
    holdout_shas = {}
    if holdout is not None:
        for src in holdout.manifest.get("sources", []):
            for path, sha in (src.get("files") or {}).items():
                holdout_shas[sha] = path
    found = []
    for src in model_lineage(model, store, holdout):
        if src["keys"] is not None:
            hits = [k for k in keys if k in src["keys"]]
        elif src["sha256"] and src["sha256"] in holdout_shas:
            hits = list(keys)
        else:
            continue
        if hits:
            long_keys = [k for k in keys if len(k.split()) >= LONG_TEXT_WORDS]
            long_hits = [k for k in hits if len(k.split()) >= LONG_TEXT_WORDS]
            found.append({"role": src["role"], "what": src["what"], "overlap": len(hits), "n": len(rows),
                          "long_overlap": len(long_hits), "long_n": len(long_keys),
                          "examples": list(dict.fromkeys(long_hits + hits))[:5]})
    return found


def describe_overlap(label: str, o: dict) -> str:
    ex = "; ".join(f"'{e[:50]}'" for e in o["examples"][:3])
    return f"{o['overlap']} of {o['n']} holdout texts are in what {label} was {o['role']} on ({o['what']}), e.g. {ex}"


def _sentiment_scores(model: ModelRecord, rows, settings, progress):
    from callsense.finetune.evaluate import SENTIMENT_LABELS, SentimentPredictor

    pred = SentimentPredictor(model.artifact_dir, settings).predict([r["text"] for r in rows], use_context=False, progress=progress)
    return encode_labels(pred, SENTIMENT_LABELS)


def _intent_scores(model: ModelRecord, rows, settings, progress):
    from callsense.finetune.evaluate import IntentSlotPredictor
    from callsense.finetune.metrics import span_counts

    intents, tags = IntentSlotPredictor(model.artifact_dir, settings).predict([r["words"] for r in rows], progress=progress)
    correct = np.array([p == r["intent"] for p, r in zip(intents, rows)], dtype=np.float64)
    return np.concatenate([correct[:, None], span_counts([r["tags"] for r in rows], tags)], axis=1)


def _asr_errors(model: ModelRecord, rows, ws: Workspace, progress):
    from callsense.finetune.audio_cache import AudioCache
    from callsense.finetune.evaluate import asr_system, evaluate_asr_rows
    from callsense.finetune.metrics import word_errors

    spec = f"nemo:{next(model.artifact_dir.glob('*.nemo'))}" if model.format == "nemo" else model.format or "whisper"
    cache = AudioCache(ws.audio_cache_dir)
    rep = evaluate_asr_rows(rows, [asr_system(spec, ws.settings)], cache, BootstrapOptions(samples=100), progress)
    hyps = next(iter(rep["systems"].values()))["hypotheses"]
    we = word_errors([r["text"] for r in rows], hyps)
    return np.stack([we["errors"], we["words"]], axis=1).astype(np.float64)


def _statistic(name: str, truth):
    """item-level arrays -> function(ix, per-item values) computing the gate metric; `ix` is
    one resample (n,) or a stack of them (resamples, n), giving one value per resample."""
    if name == "sentiment":
        y = truth

        def macro(ix, pred):
            return prf(confusion_batch(y[ix], pred[ix], 3))[2].mean(axis=-1)

        return macro
    if name == "intent-slot":
        def joint(ix, v):
            acc = v[ix, 0].mean(axis=-1)
            denom = v[ix, 2].sum(axis=-1) + v[ix, 3].sum(axis=-1)
            f1 = np.divide(2 * v[ix, 1].sum(axis=-1), denom, out=np.zeros_like(acc), where=denom > 0)
            return (acc + f1) / 2

        return joint

    def neg_wer(ix, v):  # higher is better everywhere in the gate
        words = v[ix, 1].sum(axis=-1)
        errors = v[ix, 0].sum(axis=-1)
        return -np.divide(errors, words, out=np.zeros_like(errors), where=words > 0)

    return neg_wer


def run_gate(ws: Workspace, name: str, version: int, *, holdout: str | None = None, force: bool = False,
             by: str | None = None, progress: Progress | None = None) -> GateDecision:
    """Compare candidate `name` v`version` with the serving model and promote it only if it is better."""
    progress = progress or SilentProgress()
    t0 = time.perf_counter()
    registry = ModelRegistry(ws)
    candidate = registry.get(name, version)
    serving = registry.serving(name)
    opts = BootstrapOptions.from_settings(ws.settings)
    min_delta = ws.settings.finetune.promotion_min_delta
    decision = GateDecision(name=name, candidate=candidate.version, serving=serving.version if serving else None,
                            promoted=False, reason="", metric=METRIC_OF.get(name, "?"), min_delta=min_delta)
    kind = candidate.kind
    decision.metric = METRIC_OF.get(kind, "?")
    if serving and serving.version == candidate.version:
        decision.reason = f"{candidate.label} already serves"
        return decision
    if kind not in METRIC_OF:
        raise FinetuneError(f"no promotion metric for {candidate.label} (format {candidate.format}; known kinds: {', '.join(METRIC_OF)})")
    if serving is None or force:
        decision.promoted = True
        decision.reason = "forced (no comparison)" if force else f"nothing serves {name} yet"
        registry.set_serving(name, candidate.version, action="promote", by=by, detail=decision.as_dict())
        return decision
    store = DatasetStore(ws)
    ds, split = parse_holdout(holdout, candidate, store)
    if ds.kind != KIND_OF[kind]:
        raise FinetuneError(f"holdout {ds.id} is a {ds.kind} dataset; {name} models need a {KIND_OF[kind]} dataset")
    rows = ds.rows(split)
    decision.holdout, decision.n = f"{ds.id}:{split}", len(rows)
    if not rows:
        raise FinetuneError(split_error(ds, split))
    problems = honesty_check(candidate, ds, split, rows, store)
    # The serving model's lineage too: a holdout it was trained on makes the comparison
    # meaningless (refused); one it was tuned on, or sharing a few texts, favours it (a note).
    serving_overlap = lineage_overlap(serving, ds, rows, store) if kind == "sentiment" or serving.dataset_version else []
    for o in serving_overlap:
        if is_training_overlap(o):
            problems.append(describe_overlap(f"the serving {serving.label}", o))
        else:
            decision.notes.append(describe_overlap(f"the serving {serving.label}", o) + ": the comparison favours it")
    if problems:
        decision.reason = "refused: " + "; ".join(problems) + "; " + CLEAN_HOLDOUT_HINT
        registry.record_refusal(name, candidate.version, decision.as_dict(), by)
        return decision

    if kind == "sentiment":
        from callsense.finetune.evaluate import SENTIMENT_LABELS

        truth = encode_labels([r["label"] for r in rows], SENTIMENT_LABELS)
        values = {"candidate": _sentiment_scores(candidate, rows, ws.settings, progress),
                  "serving": _sentiment_scores(serving, rows, ws.settings, progress)}
    elif kind == "intent-slot":
        truth = None
        values = {"candidate": _intent_scores(candidate, rows, ws.settings, progress),
                  "serving": _intent_scores(serving, rows, ws.settings, progress)}
    else:
        truth = None
        values = {"candidate": _asr_errors(candidate, rows, ws, progress), "serving": _asr_errors(serving, rows, ws, progress)}
    stat = _statistic(kind, truth)
    n = len(rows)
    # The same seed gives the three intervals the same resamples: the difference is paired.
    cand = bootstrap(lambda ix: stat(ix, values["candidate"]), n, opts, vectorized=True)
    serv = bootstrap(lambda ix: stat(ix, values["serving"]), n, opts, vectorized=True)
    delta = bootstrap(lambda ix: stat(ix, values["candidate"]) - stat(ix, values["serving"]), n, opts, vectorized=True)
    sign = -1.0 if kind == "asr" else 1.0  # report WER as WER

    def shown(i: Interval) -> dict:
        lo, hi = sorted((sign * i.low, sign * i.high))
        return Interval(sign * i.value, lo, hi).as_dict()

    decision.candidate_score, decision.serving_score = shown(cand), shown(serv)
    decision.delta = delta.as_dict()  # always "improvement": higher is better
    decision.seconds = round(time.perf_counter() - t0, 2)
    pct = f"{int(opts.confidence * 100)} %"
    if delta.low > min_delta:
        decision.promoted = True
        decision.reason = (f"promoted: {decision.metric} improves by {delta.value:+.4f} ({pct} interval {delta.low:+.4f} .. "
                           f"{delta.high:+.4f}, above {min_delta:g}) on {n} holdout rows")
        registry.set_serving(name, candidate.version, action="promote", by=by, detail=decision.as_dict())
    else:
        why = "worse" if delta.high < 0 else "not better beyond chance"
        decision.reason = (f"kept {serving.label}: {candidate.label} is {why} on {decision.metric} "
                           f"({delta.value:+.4f}, {pct} interval {delta.low:+.4f} .. {delta.high:+.4f} does not lie above "
                           f"{min_delta:g}) on {n} holdout rows")
        registry.record_refusal(name, candidate.version, decision.as_dict(), by)
    return decision
