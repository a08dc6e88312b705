"""`callsense eval pipeline` on recorded two-channel calls: the pipeline as configured, end to end.

Input: calls (WAV or any audio `callsense process` takes) with a turn file beside each,
``<call>.turns.csv`` (channel, start, end, text, sentiment; what
`python -m callsense.finetune.spoken_set build` writes). The calls go through a `callsense
process` subprocess into a scratch data dir (its own SQLite store and blob folder, so the
real store never sees them); the stored sentences are read back with `callsense.store` and
each one is mapped to a reference turn:

- **sentence -> turn**: the turn of the same channel whose [start, end] overlaps the
  sentence's [start, end] the most; a sentence that overlaps no turn of its channel is
  *unmatched* (counted, and its words still count as insertions in the WER).
- **turn -> label**: a turn with several stored sentences takes the majority of their
  labels; a tie goes to the label of the longest of the tied sentences (by duration). A turn
  with no stored sentence is *missed*: it counts in the WER (deletions) and in the count of
  missed turns, not in the sentiment figures.

Figures, each with its bootstrap interval: WER per channel (jiwer; a channel of a call is one
item: the reference turns joined vs the stored sentences joined, both normalised as the
references are), sentiment macro-F1 against the human labels on the reference text and on
the stored sentences (matched turns), and the agreement of the two (TR-4910's metric), with
confusion matrices.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from callsense.finetune.workspace import FinetuneError

CHANNEL_NAMES = {0: "agent", 1: "customer"}


@dataclass
class StoredSentence:
    channel: int
    start: float
    end: float
    text: str
    sentiment: str

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def map_sentences(turns, sentences: list[StoredSentence]) -> tuple[dict[int, list[StoredSentence]], list[StoredSentence]]:
    """Each sentence -> the index of the same-channel turn it overlaps most (ties: the earlier
    turn). Returns {turn index: sentences} and the unmatched sentences."""
    by_turn: dict[int, list[StoredSentence]] = {}
    unmatched = []
    for s in sentences:
        best, best_ov = None, 0.0
        for i, t in enumerate(turns):
            if t.channel != s.channel:
                continue
            ov = overlap(s.start, s.end, t.start, t.end)
            if ov > best_ov:
                best, best_ov = i, ov
        if best is None:
            unmatched.append(s)
        else:
            by_turn.setdefault(best, []).append(s)
    return by_turn, unmatched


def turn_label(sentences: list[StoredSentence]) -> str:
    """Majority label of a turn's sentences; a tie: the label of the longest tied sentence."""
    counts = Counter(s.sentiment for s in sentences)
    top = max(counts.values())
    tied = {label for label, c in counts.items() if c == top}
    return max((s for s in sentences if s.sentiment in tied), key=lambda s: s.duration).sentiment


def find_calls(path: Path) -> list[tuple[Path, Path]]:
    """(audio, turn file) pairs: a call file with its turn file beside it, or a folder of them."""
    from callsense.finetune.spoken_set import VARIANTS, turns_path

    path = Path(path)
    if path.is_file():
        t = turns_path(path)
        if not t.is_file():
            raise FinetuneError(f"{path}: no turn file beside it ({t.name})")
        return [(path, t)]
    if not path.is_dir():
        raise FinetuneError(f"{path}: no such file or folder")
    pairs = []
    for t in sorted(path.glob("*.turns.csv")):
        stem = t.name[: -len(".turns.csv")]
        audio = sorted(p for p in path.glob(stem + ".*") if p != t and p.suffix.lower() != ".csv")
        if audio:
            pairs.append((audio[0], t))
    if not pairs:
        subs = [v for v in VARIANTS if (path / v).is_dir()]
        hint = f" (a spoken set: give one of its variants, e.g. {path / subs[0]})" if subs else ""
        raise FinetuneError(f"{path}: no call with a .turns.csv beside it{hint}")
    return pairs


def is_call_input(ref: str) -> bool:
    p = Path(ref)
    if p.is_dir():
        return any(p.glob("*.turns.csv")) or any((p / v).is_dir() for v in ("clean", "noisy", "telephony"))
    if p.is_file():
        from callsense.finetune.spoken_set import turns_path

        return turns_path(p).is_file()
    return False


def pipeline_env(scratch: Path, *, asr_engine: str | None = None, sentiment_dir: Path | None = None) -> dict:
    """The environment of the `callsense process` subprocess: the configured pipeline, but its
    store and blobs in `scratch`; a chosen ASR engine or sentiment model folder when given."""
    env = dict(os.environ)
    env["CALLSENSE_DATA_DIR"] = str(scratch)
    env["CALLSENSE_DATABASE_URL"] = f"sqlite:///{scratch / 'callsense.db'}"
    env["CALLSENSE_BLOB_DIR"] = str(scratch / "blobs")
    if asr_engine:
        name, _, path = asr_engine.partition(":")
        env["CALLSENSE_ASR_ENGINE"] = name
        if name == "nemo" and path:
            env["CALLSENSE_NEMO_MODEL_PATH"] = path
    if sentiment_dir is not None:
        env["CALLSENSE_SENTIMENT_BACKEND"] = "onnx"
        env["CALLSENSE_SENTIMENT_MODEL_DIR"] = str(sentiment_dir)
    return env


def run_process(files: list[Path], scratch: Path, env: dict) -> dict:
    """`callsense process FILES` as a subprocess; {'returncode', 'seconds', 'log'}. Exit 0 and
    3 (some inputs refused) are results; anything else is an error."""
    scratch.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "callsense", "process", *map(str, files)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    log = (proc.stdout or "") + (proc.stderr or "")
    (scratch / "process.log").write_text(log, encoding="utf-8")
    if proc.returncode not in (0, 3):
        last = [l for l in log.strip().splitlines() if l.strip()][-1:] or [f"exit code {proc.returncode}"]
        raise FinetuneError(f"`callsense process` failed (exit {proc.returncode}): {last[0].strip()} (log: {scratch / 'process.log'})")
    return {"returncode": proc.returncode, "seconds": round(seconds, 2), "command": " ".join(cmd[2:])}


def read_stored(scratch: Path, names: list[str]) -> dict[str, dict]:
    """File name -> {'sentences': [StoredSentence], 'asr_model', 'sentiment_model', 'status'} from the scratch store."""
    from callsense.store.db import make_engine
    from callsense.store.repository import ResultStore

    store = ResultStore(make_engine(f"sqlite:///{scratch / 'callsense.db'}"))
    out: dict[str, dict] = {}
    for call in store.list_calls(limit=100000):
        if call.source_name not in names:
            continue
        rows = store.sentences(call.id)
        out[call.source_name] = {
            "call_id": call.id, "status": call.status,
            "sentences": [StoredSentence(r.channel, r.start, r.end, r.text, r.sentiment) for r in rows],
            "asr_model": next((r.asr_model for r in rows if r.asr_model), ""),
            "sentiment_model": next((r.sentiment_model for r in rows if r.sentiment_model), ""),
        }
    return out


def reused_scratch(report: Path, engine: str | None) -> tuple[Path, dict]:
    """The scratch store and process record of an earlier calls report (`--reuse`)."""
    import json

    result_file = Path(report) / "result.json"
    if not result_file.is_file():
        raise FinetuneError(f"--reuse {report}: no result.json (give the report folder of an earlier `eval pipeline` run on calls)")
    try:
        earlier = json.loads(result_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FinetuneError(f"--reuse {result_file}: not JSON ({exc})") from None
    scratch = Path(earlier.get("scratch") or "")
    if not earlier.get("scratch") or not (scratch / "callsense.db").is_file():
        raise FinetuneError(f"--reuse {report}: its scratch store ({scratch or 'none recorded'}) is gone; run without --reuse")
    if engine:
        raise FinetuneError("--reuse takes the transcripts of the earlier run: --engine cannot change them")
    return scratch, {**(earlier.get("process") or {}), "reused_from": str(report)}


def rescore(stored: dict[str, dict], predictor) -> dict[str, dict]:
    """The stored sentences with their sentiment given again by `predictor`, one sentence at a
    time and without context, as the pipeline's sentiment stage gives it."""
    from dataclasses import replace

    items = [(name, i) for name, got in stored.items() for i in range(len(got["sentences"]))]
    labels = predictor.predict([stored[n]["sentences"][i].text for n, i in items], use_context=False)
    out = {name: {**got, "sentences": list(got["sentences"]), "sentiment_model": predictor.model_id} for name, got in stored.items()}
    for (name, i), label in zip(items, labels):
        out[name]["sentences"][i] = replace(out[name]["sentences"][i], sentiment=label)
    return out


def evaluate_calls(pairs: list[tuple[Path, Path]], stored: dict[str, dict], predictor, opts, progress=None) -> dict:
    """The figures of the module docstring from the reference turns and the stored sentences."""
    from callsense.finetune.evaluate import SENTIMENT_LABELS
    from callsense.finetune.metrics import classification_metrics, pipeline_sentiment_metrics, wer_metrics
    from callsense.finetune.sources import normalize_transcript
    from callsense.finetune.spoken_set import read_turns

    refs: dict[int, list[str]] = {0: [], 1: []}
    hyps: dict[int, list[str]] = {0: [], 1: []}
    items, missing, per_call = [], [], []
    unmatched_total = 0
    for audio, tfile in pairs:
        turns = read_turns(tfile)
        got = stored.get(audio.name)
        if got is None:
            missing.append(audio.name)
            continue
        sents = got["sentences"]
        by_turn, unmatched = map_sentences(turns, sents)
        unmatched_total += len(unmatched)
        for ch in (0, 1):
            refs[ch].append(normalize_transcript(" ".join(t.text for t in turns if t.channel == ch)))
            hyps[ch].append(normalize_transcript(" ".join(s.text for s in sorted(sents, key=lambda s: s.start) if s.channel == ch)))
        for i, t in enumerate(turns):
            mine = by_turn.get(i, [])
            items.append({"call": audio.name, "channel": t.channel, "start": t.start, "end": t.end, "reference": t.text,
                          "label": t.sentiment, "stored": " ".join(s.text for s in mine),
                          "stored_sentences": len(mine), "stored_sentiment": turn_label(mine) if mine else None})
        per_call.append({"call": audio.name, "call_id": got["call_id"], "turns": len(turns), "sentences": len(sents),
                         "unmatched_sentences": len(unmatched), "missed_turns": sum(1 for i in range(len(turns)) if i not in by_turn)})
    if not items:
        raise FinetuneError("no call was stored by the pipeline" + (f" (not stored: {', '.join(missing)})" if missing else ""))
    labelled = [it for it in items if it["label"] in SENTIMENT_LABELS]
    ref_pred = predictor.predict([it["reference"] for it in labelled], use_context=False, progress=progress)
    for it, p in zip(labelled, ref_pred):
        it["reference_sentiment"] = p
    matched = [it for it in labelled if it["stored_sentiment"]]
    result = {
        "calls": len(per_call), "turns": len(items), "labelled_turns": len(labelled), "matched_turns": len(matched),
        "missed_turns": sum(1 for it in items if not it["stored_sentiment"]), "unmatched_sentences": unmatched_total,
        "not_stored": missing, "per_call": per_call,
        "wer": {CHANNEL_NAMES[ch]: _wer(wer_metrics(refs[ch], hyps[ch], opts)) for ch in (0, 1)},
        "wer_all": _wer(wer_metrics(refs[0] + refs[1], hyps[0] + hyps[1], opts)),
        "reference_text_all_turns": classification_metrics([it["label"] for it in labelled], ref_pred, SENTIMENT_LABELS, opts),
        "sentiment_model": predictor.model_id, "turn_rows": items,
        "mapping_rule": "sentence -> same-channel turn of largest time overlap; turn label = majority of its sentences, "
                        "tie -> longest tied sentence; turns without a sentence are missed (not in the sentiment figures)",
    }
    if matched:
        gold = [it["label"] for it in matched]
        result["reference_text"] = classification_metrics(gold, [it["reference_sentiment"] for it in matched], SENTIMENT_LABELS, opts)
        result["stored_sentences"] = classification_metrics(gold, [it["stored_sentiment"] for it in matched], SENTIMENT_LABELS, opts)
        result["agreement"] = pipeline_sentiment_metrics([it["reference_sentiment"] for it in matched],
                                                         [it["stored_sentiment"] for it in matched], opts)
    return result


def _wer(rep: dict) -> dict:
    rep.pop("per_utterance_errors", None)
    return rep
