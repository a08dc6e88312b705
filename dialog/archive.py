"""The turn archive as training material (WP-7328's loop): daily CSV dumps for annotators,
their reviews back into the store, and reviewed turns out as NeMo intent/slot files.

The CSV has one row per turn. An annotator either accepts the NLU's reading (`reviewed` =
yes) or corrects it (`review_intent`: a flow label such as `store_location` or a training
label such as `find_the_store`; `review_tags`: one BIO tag per token of `tokens`, e.g.
`O O B-item.type I-item.type`). `callsense dialog import-reviews` stores those; only
reviewed turns become training data unless asked otherwise.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from callsense.dialog.nlu import labels
from callsense.store.dialog_tables import DialogTurn

CSV_COLUMNS = ["day", "time_utc", "session_id", "turn", "channel", "text", "asr_confidence", "intent", "confidence",
               "slots", "state", "reply", "tokens", "tags", "nlu_backend", "latency_ms",
               "reviewed", "review_intent", "review_tags"]
YES = {"yes", "y", "true", "1", "ok", "x", "✓"}


def export_csv(db: Engine, out_dir: Path, day: str | None = None) -> list[Path]:
    """One CSV per day (`turns-YYYY-MM-DD.csv`, UTC days), for `day` or for every day with
    turns. Rewrites a day's file, so running it again is harmless."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = DialogTurn.__table__.c
    with db.connect() as conn:
        days = [day] if day else [r[0] for r in conn.execute(select(t.day).distinct().order_by(t.day))]
        written = []
        for d in days:
            rows = conn.execute(select(DialogTurn.__table__).where(t.day == d).order_by(t.at, t.session_id, t.turn))
            path = out_dir / f"turns-{d}.csv"
            tmp = path.with_suffix(".csv.tmp")
            count = 0
            with tmp.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(CSV_COLUMNS)
                for r in rows:
                    count += 1
                    w.writerow([
                        r.day, datetime.fromtimestamp(r.at, tz=timezone.utc).isoformat(timespec="seconds"),
                        r.session_id, r.turn, r.channel, r.text,
                        "" if r.asr_confidence is None else f"{r.asr_confidence:.3f}", r.intent or "",
                        "" if r.confidence is None else f"{r.confidence:.3f}", r.slots_json, r.state, r.reply,
                        r.tokens, r.tags, r.nlu_backend, "" if r.latency_ms is None else f"{r.latency_ms:.2f}",
                        "yes" if r.reviewed else "", r.reviewed_intent or "", r.reviewed_tags or "",
                    ])
            if count or day:
                tmp.replace(path)
                written.append(path)
            else:
                tmp.unlink()
        return written


@dataclass
class ReviewImport:
    updated: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def _known_intent(value: str) -> str | None:
    if value in labels.INTENT_TO_TRAINING or value in labels.TRAINING_TO_INTENT:
        return labels.to_flow_intent(value)
    return None


def import_reviews(db: Engine, csv_path: Path) -> ReviewImport:
    """Store the reviews of an annotated CSV. Rows with problems are reported (file:line)
    and left out; the others are stored."""
    result = ReviewImport()
    path = Path(csv_path)
    t = DialogTurn.__table__.c
    stmt = (update(DialogTurn.__table__).where(t.session_id == _bp("sid"), t.turn == _bp("tn"))
            .values(reviewed=True, reviewed_intent=_bp("ri"), reviewed_tags=_bp("rt")))
    with path.open(newline="", encoding="utf-8") as f, db.begin() as conn:
        reader = csv.DictReader(f)
        missing = {"session_id", "turn", "tokens"} - set(reader.fieldnames or [])
        if missing:
            result.problems.append(f"{path}:1: missing column(s) {', '.join(sorted(missing))}; export the CSV with "
                                   f"`callsense dialog export-csv` and edit its review columns")
            return result
        for row in reader:
            line = reader.line_num
            intent_text = (row.get("review_intent") or "").strip()
            tags_text = (row.get("review_tags") or "").strip()
            accepted = (row.get("reviewed") or "").strip().lower() in YES
            if not (intent_text or tags_text or accepted):
                result.skipped += 1
                continue
            intent = None
            if intent_text:
                intent = _known_intent(intent_text)
                if intent is None:
                    close = difflib.get_close_matches(intent_text, labels.FLOW_INTENTS + labels.TRAINING_INTENTS, 1)
                    hint = f' (did you mean "{close[0]}"?)' if close else ""
                    result.problems.append(f"{path}:{line}: unknown intent '{intent_text}'{hint}")
                    continue
            tags = None
            if tags_text:
                tags = tags_text.split()
                tokens = (row.get("tokens") or "").split()
                bad = labels.check_tags(tags)
                if bad:
                    close = difflib.get_close_matches(bad[0], labels.SLOT_LABELS, 1)
                    hint = f' (did you mean "{close[0]}"?)' if close else ""
                    result.problems.append(f"{path}:{line}: unknown slot tag '{bad[0]}'{hint}")
                    continue
                if len(tags) != len(tokens):
                    result.problems.append(f"{path}:{line}: {len(tags)} tags for {len(tokens)} tokens; "
                                           f"give one tag per token of the `tokens` column")
                    continue
            try:
                turn = int(row["turn"])
            except (TypeError, ValueError):
                result.problems.append(f"{path}:{line}: `turn` must be a number")
                continue
            res = conn.execute(stmt, {"sid": row["session_id"], "tn": turn, "ri": intent,
                                      "rt": " ".join(tags) if tags else None})
            if res.rowcount:
                result.updated += 1
            else:
                result.problems.append(f"{path}:{line}: no archived turn {row['session_id']}#{turn}")
    return result


def _bp(name: str):
    from sqlalchemy import bindparam

    return bindparam(name)


@dataclass
class NemoExport:
    out_dir: Path
    train: int = 0
    test: int = 0
    skipped: int = 0
    intents: dict[str, int] = field(default_factory=dict)


def export_nemo(db: Engine, out_dir: Path, *, include_unreviewed: bool = False,
                test_fraction: float = 0.0) -> NemoExport:
    """Write reviewed turns as NeMo intent/slot files: dict.intents.csv, dict.slots.csv,
    train.tsv, train_slots.tsv (and test.tsv / test_slots.tsv when `test_fraction` > 0,
    split by a hash of the sentence so a sentence never lands on both sides). Labels go
    through labels.py; duplicate sentences are written once (the latest review wins)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = NemoExport(out)
    t = DialogTurn.__table__.c
    q = select(DialogTurn.__table__).order_by(t.at)
    if not include_unreviewed:
        q = q.where(t.reviewed.is_(True))
    examples: dict[str, tuple[int, list[int]]] = {}
    with db.connect() as conn:
        for r in conn.execute(q):
            flow_intent = r.reviewed_intent or r.intent
            tokens = labels.tokenize(r.text)
            if not tokens or not flow_intent or flow_intent == labels.NLU_ERROR:
                result.skipped += 1
                continue
            tags_text = r.reviewed_tags or r.tags or ""
            tags = tags_text.split()
            if tokens != (r.tokens or "").split() or len(tags) != len(tokens) or labels.check_tags(tags):
                try:
                    slots = json.loads(r.slots_json or "{}")
                except ValueError:
                    slots = {}
                tags = labels.tags_from_slots(tokens, slots if isinstance(slots, dict) else {})
            sentence = " ".join(tokens)
            intent = labels.to_training_intent(flow_intent)
            examples[sentence] = (labels.TRAINING_INTENTS.index(intent), [labels.SLOT_LABEL_INDEX[x] for x in tags])
    (out / "dict.intents.csv").write_text("\n".join(labels.TRAINING_INTENTS) + "\n", encoding="utf-8")
    (out / "dict.slots.csv").write_text("\n".join(labels.SLOT_LABELS) + "\n", encoding="utf-8")
    splits: dict[str, list[tuple[str, int, list[int]]]] = {"train": [], "test": []}
    for sentence, (intent_index, slot_indices) in examples.items():
        bucket = int(hashlib.sha1(sentence.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        split = "test" if bucket < test_fraction else "train"
        splits[split].append((sentence, intent_index, slot_indices))
        name = labels.TRAINING_INTENTS[intent_index]
        result.intents[name] = result.intents.get(name, 0) + 1
    for split, rows in splits.items():
        if split == "test" and test_fraction <= 0:
            continue
        with (out / f"{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for sentence, intent_index, _ in rows:
                f.write(f"{sentence}\t{intent_index}\n")
        with (out / f"{split}_slots.tsv").open("w", encoding="utf-8") as f:
            for _, _, slot_indices in rows:
                f.write(" ".join(map(str, slot_indices)) + "\n")
    result.train, result.test = len(splits["train"]), len(splits["test"])
    return result
