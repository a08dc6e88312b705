"""Immutable, content-addressed dataset versions.

A version is a folder ``datasets/<id>/`` holding one JSON-lines file per split
(``train.jsonl``, ``dev.jsonl``, ``test.jsonl``: every row with its lineage) and
``manifest.json``. The id is the sha256 of the manifest's content (which lists the sha256 of
every split file), so the same rows and settings always give the same id, and any change
gives a new one. Files are written read-only and `DatasetVersion.verify()` re-hashes them.

Splits are fixed when the version is built: a source may name a row's split; otherwise the
hash of the row's conversation (MELD dialogue, call, session) picks it, so one conversation
never straddles two splits. The leak check then removes from train and dev every row whose
text (normalised) also occurs in test, and the manifest records what it removed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from callsense.finetune.sources import SPLITS, SourceRows, SourceSpec, read_source
from callsense.finetune.workspace import FinetuneError, Workspace, current_user, write_json

KINDS = ("sentiment", "intent-slot", "asr")
LEAK_POLICIES = ("drop", "error", "keep")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SplitPlan:
    dev_ratio: float = 0.1
    test_ratio: float = 0.1
    seed: int = 13

    def __post_init__(self):
        if not (0 <= self.dev_ratio < 1 and 0 <= self.test_ratio < 1 and self.dev_ratio + self.test_ratio < 1):
            raise FinetuneError("dev and test ratios must be in [0, 1) and leave rows for train")

    def split_of(self, group: str) -> str:
        h = int.from_bytes(hashlib.sha256(f"{self.seed}|{group}".encode()).digest()[:8], "big") / 2**64
        if h < self.test_ratio:
            return "test"
        if h < self.test_ratio + self.dev_ratio:
            return "dev"
        return "train"


_NORM = re.compile(r"[^\w\s']+")


def text_key(row: dict) -> str:
    """The text a leak or a conflict is judged on: lower case, no punctuation, single spaces."""
    text = row["text"] if "text" in row else " ".join(row["words"])
    return " ".join(_NORM.sub(" ", text.lower()).split())


def label_of(row: dict, kind: str) -> str:
    if kind == "sentiment":
        return row["label"]
    if kind == "intent-slot":
        return row["intent"] + "|" + " ".join(row["tags"])
    return row["text"]


def row_id(row: dict) -> str:
    body = {k: v for k, v in row.items() if k not in ("id", "split", "source_split")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def row_key(row: dict) -> str:
    """Identity of the underlying item (its source and reference), to see relabelled rows in a diff."""
    return f"{row['lineage']['source']}|{row['lineage']['ref']}"


def _canonical(rows: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


@dataclass
class LeakReport:
    test_texts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    remaining: int = 0  # overlaps left after the policy (0 unless policy 'keep')
    dev_train_overlap: int = 0  # informative: dev rows whose text is in train

    def as_dict(self) -> dict:
        return {"test_texts": self.test_texts, "dropped": self.dropped, "examples": self.examples[:10],
                "remaining_overlap": self.remaining, "dev_train_overlap": self.dev_train_overlap}


def check_leaks(rows: list[dict], policy: str = "drop") -> tuple[list[dict], LeakReport]:
    """No test text in train or dev. `drop` removes the overlapping train/dev rows, `error`
    refuses, `keep` keeps them and records how many remain."""
    if policy not in LEAK_POLICIES:
        raise FinetuneError(f"leak policy must be one of {', '.join(LEAK_POLICIES)}")
    test_keys = {text_key(r) for r in rows if r["split"] == "test"}
    rep = LeakReport(test_texts=len(test_keys))
    kept = []
    for r in rows:
        if r["split"] != "test" and text_key(r) in test_keys:
            if len(rep.examples) < 10:
                rep.examples.append(f"{r['split']}: {text_key(r)[:80]}")
            if policy == "error":
                raise FinetuneError(f"test text also in {r['split']}: '{text_key(r)[:80]}' ({r['lineage']['ref']}); "
                                    "fix the sources or build with --on-leak drop")
            if policy == "drop":
                rep.dropped[r["split"]] = rep.dropped.get(r["split"], 0) + 1
                continue
            rep.remaining += 1
        kept.append(r)
    train_keys = {text_key(r) for r in kept if r["split"] == "train"}
    rep.dev_train_overlap = sum(1 for r in kept if r["split"] == "dev" and text_key(r) in train_keys)
    return kept, rep


def find_conflicts(rows: list[dict], kind: str) -> dict:
    """The same text with different labels (REFERENCE: conflicting labels are caught)."""
    if kind == "asr":
        return {"texts": 0, "examples": []}
    labels: dict[str, set[str]] = {}
    for r in rows:
        labels.setdefault(text_key(r), set()).add(label_of(r, kind))
    bad = {k: sorted(v) for k, v in labels.items() if len(v) > 1}
    return {"texts": len(bad), "examples": [f"'{k[:60]}': {' / '.join(v)[:120]}" for k, v in list(bad.items())[:10]]}


def _label_counts(rows: list[dict], kind: str) -> dict:
    if kind == "sentiment":
        return dict(sorted(Counter(r["label"] for r in rows).items()))
    if kind == "intent-slot":
        return dict(sorted(Counter(r["intent"] for r in rows).items()))
    return {"audio_files": len({r["audio_sha256"] for r in rows}), "words": sum(len(r["text"].split()) for r in rows)}


def _dictionaries(sources: list[SourceRows], rows: list[dict]) -> dict:
    """Intent and slot dictionaries: a source's NeMo dictionaries keep their order (a trained
    output layer depends on it); labels new to them are appended, sorted, `O` last."""
    intents: list[str] = []
    slots: list[str] = []
    for src in sources:
        intents += [i for i in src.intents if i not in intents]
        slots += [s for s in src.slots if s not in slots and s != "O"]
    intents += sorted({r["intent"] for r in rows} - set(intents))
    new_slots = {t for r in rows for t in r["tags"]} - set(slots) - {"O"}
    slots += sorted(new_slots, key=lambda s: (s[2:], s[:2]))
    return {"intents": intents, "slots": slots + ["O"]}


# -------------------------------------------------------------------------------- versions


@dataclass
class DatasetVersion:
    path: Path
    manifest: dict

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest.get("name") or ""

    def rows(self, split: str | None = None) -> list[dict]:
        out = []
        for s in ([split] if split else SPLITS):
            path = self.path / f"{s}.jsonl"
            if path.exists():
                out += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        return out

    def counts(self) -> dict[str, int]:
        return dict(self.manifest.get("counts", {}))

    @property
    def dictionaries(self) -> dict:
        return self.manifest.get("dictionaries") or {}

    def verify(self) -> list[str]:
        """Problems found re-hashing the files (empty: intact)."""
        problems = []
        for name, digest in self.manifest["files"].items():
            p = self.path / name
            if not p.exists():
                problems.append(f"{name} is missing")
            elif hashlib.sha256(p.read_bytes()).hexdigest() != digest:
                problems.append(f"{name} was modified (sha256 differs from the manifest)")
        if _version_id(self.manifest) != self.id:
            problems.append("manifest.json was modified (its content no longer hashes to the version id)")
        return problems

    # ---- formats out ------------------------------------------------------------------

    def export(self, fmt: str | None = None, *, cache=None, out_dir: Path | None = None) -> Path:
        """Write the version in its training format (once; the folder is reused):
        sentiment -> MELD-layout CSVs, intent-slot -> NeMo files, asr -> NeMo manifests over
        16 kHz mono WAVs from the audio cache."""
        fmt = fmt or {"sentiment": "csv", "intent-slot": "nemo", "asr": "nemo-asr"}[self.kind]
        target = Path(out_dir) if out_dir else self.path / "export" / fmt
        done = target / ".complete"
        if done.exists() and out_dir is None and fmt != "nemo-asr":
            return target
        target.mkdir(parents=True, exist_ok=True)
        if fmt == "csv" and self.kind == "sentiment":
            for split in SPLITS:
                rows = self.rows(split)
                if rows:
                    write_meld_csv(target / f"{split}.csv", rows)
        elif fmt == "nemo" and self.kind == "intent-slot":
            write_nemo_intents(target, self)
        elif fmt == "nemo-asr" and self.kind == "asr":
            if cache is None:
                raise FinetuneError("exporting an ASR dataset needs the audio cache")
            for split in SPLITS:
                rows = self.rows(split)
                if rows:
                    write_nemo_asr_manifest(target / f"{split}_manifest.json", rows, cache)
        else:
            raise FinetuneError(f"a {self.kind} dataset cannot be written as {fmt}")
        done.write_text(self.id + "\n")
        return target


def write_meld_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Source"])
        for n, r in enumerate(rows, start=1):
            w.writerow([n, r["text"], r.get("speaker", ""), "", r["label"], r["group"], r.get("position", 0), r["lineage"]["ref"]])


def write_nemo_intents(target: Path, version: DatasetVersion) -> None:
    from callsense.dialog.nlu.data.nemo_files import NemoExample, write_dicts, write_split

    d = version.dictionaries
    write_dicts(target, d["intents"], d["slots"])
    for split in SPLITS:
        rows = version.rows(split)
        if rows:
            write_split(target, split, [NemoExample(r["words"], r["intent"], r["tags"]) for r in rows], d["intents"], d["slots"])


def write_nemo_asr_manifest(path: Path, rows: list[dict], cache) -> None:
    from callsense.audio.resample import TARGET_RATE

    lines = []
    for r in rows:
        wav = cache.wav(Path(r["audio"]), r.get("channel"), r.get("offset") or 0.0, r.get("duration"))
        import wave

        with wave.open(str(wav), "rb") as w:
            duration = w.getnframes() / TARGET_RATE
        lines.append(json.dumps({"audio_filepath": str(wav), "duration": round(duration, 3), "text": r["text"], "row_id": r["id"]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _version_id(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k not in ("id", "name", "created_at", "created_by", "path")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------- store


@dataclass
class BuildResult:
    version: DatasetVersion
    created: bool  # False: a version with exactly this content already existed


class DatasetStore:
    """Builds, lists, finds and compares dataset versions under the workspace."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.root = ws.datasets_dir

    def build(self, kind: str, sources: list[str], *, name: str = "", plan: SplitPlan = SplitPlan(), on_leak: str = "drop",
              progress: Callable[[str], None] | None = None) -> BuildResult:
        if kind not in KINDS:
            raise FinetuneError(f"dataset kind must be one of {', '.join(KINDS)}")
        if not sources:
            raise FinetuneError("give at least one --source (TYPE[:PATH][@SPLIT])")
        specs = [SourceSpec.parse(s, kind) for s in sources]
        read: list[SourceRows] = []
        for spec in specs:
            if progress:
                progress(f"reading {spec.raw}")
            read.append(read_source(kind, spec, self.ws))
        rows: list[dict] = []
        for src in read:
            for r in src.rows:
                r = dict(r)
                r["split"] = r.pop("source_split", None) or plan.split_of(r["group"])
                r["id"] = row_id(r)
                rows.append(r)
        if not rows:
            raise FinetuneError("the sources gave no rows (" + "; ".join(f"{s.spec.raw}: {len(s.skipped)} skipped" for s in read) + ")")
        # The same item twice (e.g. a source listed twice): keep the first.
        seen, unique = set(), []
        for r in rows:
            if r["id"] not in seen:
                seen.add(r["id"])
                unique.append(r)
        rows, leaks = check_leaks(unique, on_leak)
        by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
        files = {}
        tmp = self.root / f".build-{os.getpid()}-{time.time_ns()}"
        tmp.mkdir(parents=True)
        try:
            for split, split_rows in by_split.items():
                if split_rows:
                    data = _canonical(split_rows)
                    (tmp / f"{split}.jsonl").write_bytes(data)
                    files[f"{split}.jsonl"] = hashlib.sha256(data).hexdigest()
            manifest = {
                "format_version": FORMAT_VERSION,
                "kind": kind,
                "name": name,
                "created_by": current_user(),
                "created_at": time.time(),
                "sources": [s.summary() for s in read],
                "split_plan": {"dev_ratio": plan.dev_ratio, "test_ratio": plan.test_ratio, "seed": plan.seed,
                               "by": "source split, else sha256(seed|conversation)"},
                "counts": {s: len(v) for s, v in by_split.items()},
                "labels": {s: _label_counts(v, kind) for s, v in by_split.items() if v},
                "leak_check": dict(leaks.as_dict(), policy=on_leak),
                "conflicts": find_conflicts(rows, kind),
                "lineage": {
                    "sources": dict(Counter(r["lineage"]["source"] for r in rows)),
                    "who": dict(Counter(r["lineage"]["who"] or "(file)" for r in rows).most_common(20)),
                },
                "files": files,
            }
            if kind == "intent-slot":
                manifest["dictionaries"] = _dictionaries(read, rows)
            manifest["id"] = _version_id(manifest)
            final = self.root / manifest["id"]
            if final.exists():
                shutil.rmtree(tmp)
                existing = self.get(manifest["id"])
                return BuildResult(existing, created=False)
            write_json(tmp / "manifest.json", manifest)
            for p in tmp.iterdir():
                p.chmod(0o444)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        version = DatasetVersion(final, manifest)
        self._index(version)
        return BuildResult(version, created=True)

    def _index(self, v: DatasetVersion) -> None:
        from sqlmodel import Session

        from callsense.store.registry_tables import DatasetVersionRecord

        rec = DatasetVersionRecord(id=v.id, kind=v.kind, name=v.name, path=str(v.path), rows=sum(v.counts().values()),
                                   splits_json=json.dumps(v.counts()),
                                   sources_json=json.dumps([s["spec"] for s in v.manifest["sources"]]),
                                   created_by=v.manifest.get("created_by", ""), created_at=v.manifest.get("created_at", 0.0))
        with Session(self.ws.engine) as s:
            s.merge(rec)
            s.commit()

    def list(self, kind: str | None = None) -> list[DatasetVersion]:
        out = []
        if self.root.is_dir():
            for p in self.root.iterdir():
                m = p / "manifest.json"
                if p.is_dir() and not p.name.startswith(".") and m.is_file():
                    v = DatasetVersion(p, json.loads(m.read_text(encoding="utf-8")))
                    if kind is None or v.kind == kind:
                        out.append(v)
        return sorted(out, key=lambda v: v.manifest.get("created_at", 0))

    def get(self, ref: str) -> DatasetVersion:
        """By id, unique id prefix, or name (the newest version of that name)."""
        versions = self.list()
        exact = [v for v in versions if v.id == ref]
        if exact:
            return exact[0]
        prefix = [v for v in versions if v.id.startswith(ref)] if len(ref) >= 4 else []
        if len(prefix) == 1:
            return prefix[0]
        if len(prefix) > 1:
            raise FinetuneError(f"dataset '{ref}' is ambiguous: {', '.join(v.id for v in prefix)}")
        named = [v for v in versions if v.name == ref]
        if named:
            return named[-1]
        known = ", ".join(f"{v.id} ({v.name})" if v.name else v.id for v in versions[-5:]) or "none yet: run `callsense data build`"
        raise FinetuneError(f"no dataset version '{ref}'; known: {known}")

    def diff(self, a_ref: str, b_ref: str) -> dict:
        a, b = self.get(a_ref), self.get(b_ref)
        rows_a = {row_key(r): r for r in a.rows()}
        rows_b = {row_key(r): r for r in b.rows()}
        added = [k for k in rows_b if k not in rows_a]
        removed = [k for k in rows_a if k not in rows_b]
        relabelled, moved, edited = [], [], []
        for k in rows_a.keys() & rows_b.keys():
            ra, rb = rows_a[k], rows_b[k]
            if ra["id"] == rb["id"] and ra["split"] == rb["split"]:
                continue
            if label_of(ra, a.kind) != label_of(rb, b.kind) and text_key(ra) == text_key(rb):
                relabelled.append((k, label_of(ra, a.kind), label_of(rb, b.kind)))
            elif ra["id"] != rb["id"]:
                edited.append(k)
            if ra["split"] != rb["split"]:
                moved.append((k, ra["split"], rb["split"]))
        return {
            "a": a.id, "b": b.id, "kind_a": a.kind, "kind_b": b.kind,
            "counts_a": a.counts(), "counts_b": b.counts(),
            "added": len(added), "removed": len(removed), "relabelled": len(relabelled), "edited": len(edited), "moved": len(moved),
            "added_examples": [_describe(rows_b[k]) for k in added[:5]],
            "removed_examples": [_describe(rows_a[k]) for k in removed[:5]],
            "relabelled_examples": [f"{k}: {x} -> {y}" for k, x, y in relabelled[:5]],
            "moved_examples": [f"{k}: {x} -> {y}" for k, x, y in moved[:5]],
        }


def _describe(row: dict) -> str:
    text = row["text"] if "text" in row else " ".join(row["words"])
    return f"[{row['split']}] {text[:60]} ({row['lineage']['source']} {row['lineage']['ref']})"
