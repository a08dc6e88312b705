"""Read and write NeMo intent/slot training folders, convert SNIPS/ATIS-style data, and score
predictions (intent accuracy, span-level slot F1).

Standard library only: the runtime (no torch), the data generator and the training script
(`dialog/nlu/build_model.py`, which loads this file by path) all use it.

A NeMo folder holds `dict.intents.csv` (one intent per line, index = line number),
`dict.slots.csv` (one BIO label per line, `O` last), and for each split PREFIX
(`train`, `test`, `dev`) `PREFIX.tsv` (header `sentence<TAB>label`, then the
space-separated query and the intent index) and `PREFIX_slots.tsv` (the slot index of
every whitespace token of the matching query line).

Command line (convert SNIPS as shipped in ../shared/data/nlu/snips to NeMo files)::

    python dialog/nlu/data/nemo_files.py from-seq /work/shared/data/nlu/snips /tmp/snips_nemo
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUTSIDE = "O"


@dataclass
class NemoExample:
    words: list[str]
    intent: str
    tags: list[str]


@dataclass
class NemoSplit:
    intents: list[str]  # dict.intents.csv in index order
    slots: list[str]  # dict.slots.csv in index order
    examples: list[NemoExample] = field(default_factory=list)


class NemoFormatError(ValueError):
    """A NeMo file that does not follow the format; the message names file and line."""


# ----------------------------------------------------------------------------------- reading


def read_dict(path: Path) -> list[str]:
    if not path.is_file():
        raise NemoFormatError(f"{path}: missing (a NeMo folder needs dict.intents.csv and dict.slots.csv)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_split(folder: Path, prefix: str = "train") -> NemoSplit:
    """Read `PREFIX.tsv` + `PREFIX_slots.tsv` with the folder's dictionaries."""
    folder = Path(folder)
    intents = read_dict(folder / "dict.intents.csv")
    slots = read_dict(folder / "dict.slots.csv")
    queries_path, slots_path = folder / f"{prefix}.tsv", folder / f"{prefix}_slots.tsv"
    for p in (queries_path, slots_path):
        if not p.is_file():
            raise NemoFormatError(f"{p}: missing (split '{prefix}' needs {prefix}.tsv and {prefix}_slots.tsv)")
    query_lines = queries_path.read_text(encoding="utf-8").splitlines()
    if query_lines and query_lines[0].strip().lower().startswith("sentence"):
        query_lines = query_lines[1:]
    slot_lines = slots_path.read_text(encoding="utf-8").splitlines()
    query_lines = [l for l in query_lines if l.strip()]
    slot_lines = [l for l in slot_lines if l.strip()]
    if len(query_lines) != len(slot_lines):
        raise NemoFormatError(f"{queries_path} has {len(query_lines)} queries but {slots_path} has {len(slot_lines)} lines")
    split = NemoSplit(intents, slots)
    for n, (qline, sline) in enumerate(zip(query_lines, slot_lines), start=2):
        sentence, sep, label = qline.rpartition("\t")
        if not sep:
            raise NemoFormatError(f"{queries_path}:{n}: expected 'sentence<TAB>intent index'")
        words = sentence.split()
        try:
            intent = intents[int(label)]
            tags = [slots[int(i)] for i in sline.split()]
        except (ValueError, IndexError):
            raise NemoFormatError(f"{queries_path}:{n} / {slots_path}:{n - 1}: index outside the dictionaries") from None
        if len(tags) != len(words):
            raise NemoFormatError(f"{slots_path}:{n - 1}: {len(tags)} slot indices for {len(words)} words")
        split.examples.append(NemoExample(words, intent, tags))
    return split


# ----------------------------------------------------------------------------------- writing


def write_dicts(folder: Path, intents: list[str], slots: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if OUTSIDE not in slots or slots[-1] != OUTSIDE:
        raise NemoFormatError("dict.slots.csv must end with 'O'")
    (folder / "dict.intents.csv").write_text("".join(f"{i}\n" for i in intents), encoding="utf-8")
    (folder / "dict.slots.csv").write_text("".join(f"{s}\n" for s in slots), encoding="utf-8")


def write_split(folder: Path, prefix: str, examples: list[NemoExample], intents: list[str], slots: list[str]) -> None:
    intent_index = {name: i for i, name in enumerate(intents)}
    slot_index = {name: i for i, name in enumerate(slots)}
    queries, slot_rows = ["sentence\tlabel\n"], []
    for ex in examples:
        if len(ex.words) != len(ex.tags) or not ex.words:
            raise NemoFormatError(f"bad example {ex.words!r} / {ex.tags!r}")
        if any(("\t" in w or " " in w) for w in ex.words):
            raise NemoFormatError(f"words may not contain blanks: {ex.words!r}")
        queries.append(f"{' '.join(ex.words)}\t{intent_index[ex.intent]}\n")
        slot_rows.append(" ".join(str(slot_index[t]) for t in ex.tags) + "\n")
    (folder / f"{prefix}.tsv").write_text("".join(queries), encoding="utf-8")
    (folder / f"{prefix}_slots.tsv").write_text("".join(slot_rows), encoding="utf-8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------- SNIPS / ATIS conversion


def _read_seq_dir(split_dir: Path) -> list[NemoExample]:
    words = (split_dir / "seq.in").read_text(encoding="utf-8").splitlines()
    tags = (split_dir / "seq.out").read_text(encoding="utf-8").splitlines()
    labels = (split_dir / "label").read_text(encoding="utf-8").splitlines()
    if not (len(words) == len(tags) == len(labels)):
        raise NemoFormatError(f"{split_dir}: seq.in, seq.out and label differ in length")
    out = []
    for n, (w, t, l) in enumerate(zip(words, tags, labels), start=1):
        ws, ts = w.split(), t.split()
        if len(ws) != len(ts):
            raise NemoFormatError(f"{split_dir}/seq.out:{n}: {len(ts)} tags for {len(ws)} words")
        if ws:
            out.append(NemoExample(ws, l.strip(), ts))
    return out


def convert_seq_folder(src: Path, dst: Path) -> dict[str, int]:
    """SNIPS/ATIS as `SPLIT/{seq.in,seq.out,label}` -> NeMo files (`train`, `dev`, `test`
    as present). The dictionaries are the sorted label sets seen in the splits (`O` last)."""
    src, dst = Path(src), Path(dst)
    splits = {name: _read_seq_dir(src / name) for name in ("train", "dev", "test") if (src / name / "seq.in").is_file()}
    if "train" not in splits:
        raise NemoFormatError(f"{src}: no train/seq.in")
    intents = sorted({ex.intent for exs in splits.values() for ex in exs})
    slot_set = {t for exs in splits.values() for ex in exs for t in ex.tags} - {OUTSIDE}
    slots = sorted(slot_set, key=lambda s: (s[2:], s[:2])) + [OUTSIDE]
    write_dicts(dst, intents, slots)
    for name, exs in splits.items():
        write_split(dst, name, exs, intents, slots)
    return {name: len(exs) for name, exs in splits.items()}


# ----------------------------------------------------------------------------------- scoring


def spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(start, end-exclusive, type) of every BIO span, read like seqeval (an `I-` that does
    not continue a span of its type starts one)."""
    out: set[tuple[int, int, str]] = set()
    start, kind = None, None
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        prefix, _, t = tag.partition("-")
        continues = prefix == "I" and t == kind and start is not None
        if start is not None and not continues:
            out.add((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, t
    return out


def slot_f1(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro span precision / recall / F1 over all sentences (exact type and boundaries)."""
    tp = n_pred = n_gold = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        tp += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold_spans": n_gold, "predicted_spans": n_pred}


def score(gold: list[NemoExample], pred_intents: list[str], pred_tags: list[list[str]]) -> dict:
    """Intent accuracy, slot span F1, sentence accuracy (intent and every tag right),
    per-intent accuracy and per-slot-type span precision / recall / F1."""
    n = len(gold)
    correct = [g.intent == p for g, p in zip(gold, pred_intents)]
    per_intent: dict[str, list[int]] = {}
    for g, ok in zip(gold, correct):
        per_intent.setdefault(g.intent, [0, 0])
        per_intent[g.intent][0] += ok
        per_intent[g.intent][1] += 1
    f1 = slot_f1([g.tags for g in gold], pred_tags)
    counts: dict[str, list[int]] = {}  # type -> [tp, predicted, gold]
    for g, p in zip(gold, pred_tags):
        gs, ps = spans(g.tags), spans(p)
        for s_ in gs & ps:
            counts.setdefault(s_[2], [0, 0, 0])[0] += 1
        for s_ in ps:
            counts.setdefault(s_[2], [0, 0, 0])[1] += 1
        for s_ in gs:
            counts.setdefault(s_[2], [0, 0, 0])[2] += 1
    per_type = {}
    for kind, (tp, n_p, n_g) in sorted(counts.items()):
        p_ = tp / n_p if n_p else 0.0
        r_ = tp / n_g if n_g else 0.0
        per_type[kind] = {"precision": round(p_, 4), "recall": round(r_, 4),
                          "f1": round(2 * p_ * r_ / (p_ + r_), 4) if p_ + r_ else 0.0, "gold": n_g, "predicted": n_p}
    exact = sum(ok and g.tags == p for g, ok, p in zip(gold, correct, pred_tags))
    return {
        "examples": n,
        "intent_accuracy": sum(correct) / n if n else 0.0,
        "slot_f1": f1["f1"],
        "slot_precision": f1["precision"],
        "slot_recall": f1["recall"],
        "gold_spans": f1["gold_spans"],
        "sentence_accuracy": exact / n if n else 0.0,
        "per_intent_accuracy": {k: round(v[0] / v[1], 4) for k, v in sorted(per_intent.items())},
        "per_slot_type": per_type,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="NeMo intent/slot files: convert and check.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("from-seq", help="convert SNIPS/ATIS-style SPLIT/{seq.in,seq.out,label} folders to NeMo files")
    c.add_argument("src")
    c.add_argument("dst")
    k = sub.add_parser("check", help="read a NeMo folder's splits and print their sizes")
    k.add_argument("folder")
    k.add_argument("--prefix", action="append", default=None)
    args = p.parse_args(argv)
    if args.cmd == "from-seq":
        counts = convert_seq_folder(Path(args.src), Path(args.dst))
        print(f"wrote {args.dst}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    else:
        for prefix in args.prefix or ["train", "test"]:
            split = read_split(Path(args.folder), prefix)
            print(f"{prefix}: {len(split.examples)} examples, {len(split.intents)} intents, {len(split.slots)} slot labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
