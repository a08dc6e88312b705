"""Helpers of the fine-tuning tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest


def write_meld_slice(src: Path, dst: Path, dialogues: int, start: int = 0) -> Path:
    """The first `dialogues` conversations (from `start`) of a MELD CSV, rows untouched."""
    with open(src, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = sorted({int(r["Dialogue_ID"]) for r in rows})[start:start + dialogues]
    keep = [r for r in rows if int(r["Dialogue_ID"]) in set(ids)]
    with open(dst, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(keep)
    return dst


def write_seq_slice(src: Path, dst: Path, n: int) -> Path:
    """Every k-th line of a SNIPS split folder (all intents represented)."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = {f: (src / f).read_text(encoding="utf-8").splitlines() for f in ("seq.in", "seq.out", "label")}
    step = max(1, len(lines["seq.in"]) // n)
    for f, ls in lines.items():
        (dst / f).write_text("\n".join(ls[::step][:n]) + "\n", encoding="utf-8")
    return dst


def shipped_sentiment_dir() -> Path:
    from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"the shipped sentiment model is missing at {DEFAULT_MODEL_DIR} (rebuild: see nlp/sentiment/models/minilm-meld-int8/README.md)",
                    pytrace=False)
    return DEFAULT_MODEL_DIR


def degrade_sentiment_model(src: Path, dst: Path) -> Path:
    """A deliberately worse copy of a sentiment model: the same network with its negative and
    positive outputs swapped in labels.json (the ONNX file and its sha256 are untouched)."""
    import shutil

    shutil.copytree(src, dst)
    labels_path = dst / "labels.json"
    labels_path.chmod(0o644)
    labels = json.loads(labels_path.read_text())
    if isinstance(labels, dict):
        swapped = {k: {"negative": "positive", "positive": "negative"}.get(v, v) for k, v in labels.items()}
    else:
        swapped = [{"negative": "positive", "positive": "negative"}.get(v, v) for v in labels]
    labels_path.write_text(json.dumps(swapped))
    return dst
