"""Where dataset rows come from. A source is written ``TYPE[:PATH][@SPLIT]``:

sentiment
    ``meld:FILE.csv``      a CSV laid out like MELD (Utterance, Sentiment, Dialogue_ID, Utterance_ID, Speaker)
    ``review``             sentences reviewed on the dashboard (final labels, who and when)
intent-slot
    ``nemo:FOLDER``        NeMo intent/slot files (every PREFIX.tsv there; ``nemo:FOLDER/test.tsv`` for one)
    ``seq:FOLDER``         SNIPS/ATIS ``seq.in``/``seq.out``/``label`` (a split folder, or one holding train/dev/test)
    ``dialog``             reviewed turns of the assistant's archive
asr
    ``nemo-asr:MANIFEST``  a NeMo ASR manifest (JSON lines: audio_filepath, duration, text[, offset])
    ``audio-manifest:FILE`` JSON lines ``{"audio", "channel", "text"}`` like ../shared/data/audio/manifest.jsonl
    ``review``             dashboard-reviewed transcripts, cut from the calls' stored audio

``@SPLIT`` (train, dev or test) puts every row of the source in that split; without it a
row keeps the dev or test split its source names (a NeMo prefix, a SNIPS folder), and the
others are assigned one by the hash of their conversation (the split plan's ratios). Every row carries its lineage: source, reference, who, when.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from callsense.finetune.workspace import FinetuneError, Workspace, utc_iso

SPLITS = ("train", "dev", "test")
SENTIMENT_LABELS = ("negative", "neutral", "positive")
CONTEXT_KEEP = 8  # previous utterances stored with each sentiment row (the job picks how many to use)

SOURCE_TYPES = {
    "sentiment": ("meld", "review"),
    "intent-slot": ("nemo", "seq", "dialog"),
    "asr": ("nemo-asr", "audio-manifest", "review"),
}


@dataclass(frozen=True)
class SourceSpec:
    raw: str
    type: str
    path: Path | None
    split: str | None

    @classmethod
    def parse(cls, raw: str, kind: str) -> "SourceSpec":
        text, split = raw, None
        if "@" in raw:
            text, split = raw.rsplit("@", 1)
            if split not in SPLITS:
                raise FinetuneError(f"source '{raw}': split must be one of {', '.join(SPLITS)}, not '{split}'")
        type_, _, path = text.partition(":")
        allowed = SOURCE_TYPES[kind]
        if type_ not in allowed:
            raise FinetuneError(f"source '{raw}': a {kind} dataset takes {', '.join(allowed)} (TYPE[:PATH][@SPLIT])")
        needs_path = type_ not in ("review", "dialog")
        if needs_path and not path:
            raise FinetuneError(f"source '{raw}': {type_} needs a path ({type_}:PATH)")
        p = Path(path).expanduser().resolve() if path else None
        if p is not None and not p.exists():
            raise FinetuneError(f"source '{raw}': {p} does not exist")
        return cls(raw=raw, type=type_, path=p, split=split)


@dataclass
class SourceRows:
    """What one source gave: its rows and a summary for the manifest."""

    spec: SourceSpec
    rows: list[dict] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256
    skipped: list[str] = field(default_factory=list)
    intents: list[str] = field(default_factory=list)  # dictionary order from NeMo files, if any
    slots: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"spec": self.spec.raw, "type": self.spec.type, "path": str(self.spec.path) if self.spec.path else None,
                "split": self.spec.split, "rows": len(self.rows), "files": self.files,
                "skipped": len(self.skipped), "skipped_examples": self.skipped[:5]}


def lineage(source: str, ref: str, who: str | None, when: str | None) -> dict:
    return {"source": source, "ref": ref, "who": who, "when": when}


def _file_when(path: Path) -> str:
    return utc_iso(path.stat().st_mtime)


def _sha(path: Path) -> str:
    from callsense.finetune.audio_cache import file_sha256

    return file_sha256(path)


# ------------------------------------------------------------------------------ sentiment


# MELD is typeset with curly quotes, ellipses and dashes; live callsense text (ASR transcripts,
# typed text) is mostly plain ASCII. Sentiment rows are mapped to ASCII before tokenization so
# that training text looks like inference text. The sentiment export writes this table into
# the model's manifest (`text_normalization.applied_in_training`), and the `onnx` runtime
# applies the manifest's table to every sentence it scores (nlp/sentiment/onnx_model.py).
TEXT_NORMALIZATION = {
    "\u2019": "'",  # right single quote / apostrophe
    "\u2018": "'",  # left single quote
    "\u201c": '"',  # left double quote
    "\u201d": '"',  # right double quote
    "\u2026": "...",  # ellipsis
    "\u2014": " - ",  # em dash
    "\u2013": " - ",  # en dash
    "\u00a0": " ",  # no-break space
}
_NORM_TABLE = str.maketrans(TEXT_NORMALIZATION)


def normalize_sentence(text: str) -> str:
    """The sentiment model's text normalisation: MELD typography -> ASCII, whitespace squeezed."""
    return " ".join(text.translate(_NORM_TABLE).split())


def read_meld(spec: SourceSpec) -> SourceRows:
    out = SourceRows(spec, files={str(spec.path): _sha(spec.path)})
    when = _file_when(spec.path)
    by_dialogue: dict[str, list[tuple[int, dict]]] = {}
    with open(spec.path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"Utterance", "Sentiment"} - set(reader.fieldnames or [])
        if missing:
            raise FinetuneError(f"{spec.path}: not a MELD-layout CSV (missing column(s) {', '.join(sorted(missing))})")
        for line, rec in enumerate(reader, start=2):
            label = (rec.get("Sentiment") or "").strip().lower()
            text = normalize_sentence(rec.get("Utterance") or "")
            if label not in SENTIMENT_LABELS:
                raise FinetuneError(f"{spec.path}:{line}: Sentiment '{rec.get('Sentiment')}' is not one of {', '.join(SENTIMENT_LABELS)}")
            if not text:
                out.skipped.append(f"{spec.path.name}:{line}: empty utterance")
                continue
            dialogue = (rec.get("Dialogue_ID") or "").strip() or f"line{line}"
            try:
                position = int(rec.get("Utterance_ID") or 0)
            except ValueError:
                position = 0
            row = {"text": text, "label": label, "speaker": (rec.get("Speaker") or "").strip(),
                   "group": f"{spec.path.stem}:{dialogue}", "position": position, "context": [],
                   "lineage": lineage("files", f"{spec.path.name}:{line}", None, when)}
            by_dialogue.setdefault(row["group"], []).append((position, row))
            out.rows.append(row)
    for turns in by_dialogue.values():
        turns.sort(key=lambda t: t[0])
        texts = [r["text"] for _, r in turns]
        for i, (_, row) in enumerate(turns):
            row["context"] = texts[max(0, i - CONTEXT_KEEP):i]
    return out


def read_sentiment_reviews(spec: SourceSpec, ws: Workspace) -> SourceRows:
    try:
        from callsense.store.review import labelled_sentences
    except ImportError as e:  # the dashboard module is part of the package; say so if it is not installed
        raise FinetuneError(f"dashboard review data needs callsense.dashboard ({e})") from None
    from sqlalchemy import select
    from sqlmodel import Session

    from callsense.store.schema import Sentence

    out = SourceRows(spec)
    reviewed = labelled_sentences(ws.engine)
    calls = sorted({r.call_id for r in reviewed})
    final_text = {(r.call_id, r.channel, r.utterance_idx, r.idx): r.text for r in reviewed}
    context_of: dict[tuple, list[str]] = {}
    with Session(ws.engine) as s:
        for call_id in calls:
            sents = list(s.exec(select(Sentence).where(Sentence.call_id == call_id)
                                .order_by(Sentence.start, Sentence.channel, Sentence.utterance_idx, Sentence.idx)).scalars())
            texts = []
            for sent in sents:
                key = (sent.call_id, sent.channel, sent.utterance_idx, sent.idx)
                context_of[key] = texts[-CONTEXT_KEEP:]
                texts = texts + [final_text.get(key, sent.text)]
    for r in reviewed:
        label = r.label.strip().lower()
        key = (r.call_id, r.channel, r.utterance_idx, r.idx)
        if label not in SENTIMENT_LABELS or not r.text.strip():
            out.skipped.append(f"{'/'.join(map(str, key))}: label '{r.label}' or empty text")
            continue
        out.rows.append({"text": normalize_sentence(r.text), "label": label, "speaker": r.speaker, "group": f"call:{r.call_id}",
                         "position": len(context_of.get(key, [])), "context": context_of.get(key, []),
                         "lineage": lineage("dashboard-review", "/".join(map(str, key)), r.reviewer, utc_iso(r.reviewed_at)),
                         "action": r.action, "original_label": r.original_label})
    return out


# ---------------------------------------------------------------------------- intent-slot


def _nemo_files():
    from callsense.dialog.nlu.data import nemo_files

    return nemo_files


def read_nemo_intents(spec: SourceSpec) -> SourceRows:
    nf = _nemo_files()
    folder = spec.path if spec.path.is_dir() else spec.path.parent
    if spec.path.is_dir():
        prefixes = sorted(p.name[:-4] for p in folder.glob("*.tsv") if not p.name.endswith("_slots.tsv"))
    else:
        prefixes = [spec.path.name[: -len(".tsv")]]
    if not prefixes:
        raise FinetuneError(f"{spec.path}: no PREFIX.tsv files (NeMo intent/slot format)")
    out = SourceRows(spec)
    for name in ("dict.intents.csv", "dict.slots.csv"):
        if (folder / name).is_file():
            out.files[str(folder / name)] = _sha(folder / name)
    for prefix in prefixes:
        try:
            split = nf.read_split(folder, prefix)
        except nf.NemoFormatError as e:
            raise FinetuneError(str(e)) from None
        out.intents, out.slots = split.intents, split.slots
        for p in (folder / f"{prefix}.tsv", folder / f"{prefix}_slots.tsv"):
            out.files[str(p)] = _sha(p)
        when = _file_when(folder / f"{prefix}.tsv")
        src_split = prefix if prefix in SPLITS else None
        for n, ex in enumerate(split.examples, start=2):
            out.rows.append({"words": ex.words, "tags": ex.tags, "intent": ex.intent, "group": f"{folder.name}/{prefix}:{n}",
                             "source_split": src_split, "lineage": lineage("files", f"{folder.name}/{prefix}.tsv:{n}", None, when)})
    return out


def read_seq(spec: SourceSpec) -> SourceRows:
    folders = [spec.path] if (spec.path / "seq.in").is_file() else [spec.path / s for s in SPLITS if (spec.path / s / "seq.in").is_file()]
    if not folders:
        raise FinetuneError(f"{spec.path}: no seq.in (SNIPS/ATIS layout: seq.in, seq.out, label)")
    out = SourceRows(spec)
    for folder in folders:
        words = (folder / "seq.in").read_text(encoding="utf-8").splitlines()
        tags = (folder / "seq.out").read_text(encoding="utf-8").splitlines()
        labels = (folder / "label").read_text(encoding="utf-8").splitlines()
        if not (len(words) == len(tags) == len(labels)):
            raise FinetuneError(f"{folder}: seq.in, seq.out and label differ in length")
        for name in ("seq.in", "seq.out", "label"):
            out.files[str(folder / name)] = _sha(folder / name)
        when = _file_when(folder / "seq.in")
        src_split = folder.name if folder != spec.path or folder.name in SPLITS else None
        for n, (w, t, l) in enumerate(zip(words, tags, labels), start=1):
            ws, ts = w.split(), t.split()
            if not ws:
                continue
            if len(ws) != len(ts):
                raise FinetuneError(f"{folder}/seq.out:{n}: {len(ts)} tags for {len(ws)} words")
            out.rows.append({"words": ws, "tags": ts, "intent": l.strip(), "group": f"{folder.parent.name}/{folder.name}:{n}",
                             "source_split": src_split if src_split in SPLITS else None,
                             "lineage": lineage("files", f"{folder.parent.name}/{folder.name}/seq.in:{n}", None, when)})
    return out


def read_dialog_turns(spec: SourceSpec, ws: Workspace) -> SourceRows:
    from sqlalchemy import select
    from sqlmodel import Session

    from callsense.dialog.nlu.labels import to_training_intent
    from callsense.store.dialog_tables import DialogTurn

    out = SourceRows(spec)
    with Session(ws.engine) as s:
        turns = list(s.exec(select(DialogTurn).where(DialogTurn.reviewed == True)  # noqa: E712
                            .order_by(DialogTurn.at, DialogTurn.id)).scalars())
    for t in turns:
        words = t.tokens.split()
        tags = (t.reviewed_tags or t.tags or "").split()
        intent = to_training_intent(t.reviewed_intent or t.intent or "")
        if not words or len(words) != len(tags):
            out.skipped.append(f"{t.session_id}/{t.turn}: {len(tags)} tags for {len(words)} tokens")
            continue
        out.rows.append({"words": words, "tags": tags, "intent": intent, "group": f"session:{t.session_id}",
                         "source_split": None,
                         "lineage": lineage("dialog-archive", f"{t.session_id}/{t.turn}", "reviewed (import-reviews)", utc_iso(t.at))})
    return out


# ------------------------------------------------------------------------------------ asr

_ASR_TEXT = re.compile(r"[^a-z0-9' ]+")


def normalize_transcript(text: str) -> str:
    """Lower case, no punctuation (apostrophes kept), single spaces: how references are written."""
    text = text.lower().replace("\u2019", "'").replace("-", " ")
    return " ".join(_ASR_TEXT.sub(" ", text).split())


def _asr_row(audio: Path, text: str, channel: int | None, offset: float, duration: float | None, group: str, lin: dict) -> dict:
    return {"audio": str(audio), "audio_sha256": _sha(audio), "channel": channel, "offset": round(float(offset), 3),
            "duration": None if duration is None else round(float(duration), 3), "text": normalize_transcript(text),
            "group": group, "source_split": None, "lineage": lin}


def read_nemo_asr(spec: SourceSpec) -> SourceRows:
    out = SourceRows(spec, files={str(spec.path): _sha(spec.path)})
    when = _file_when(spec.path)
    for n, line in enumerate(spec.path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            audio = Path(rec["audio_filepath"])
            text = rec["text"]
        except (ValueError, KeyError, TypeError):
            raise FinetuneError(f"{spec.path}:{n}: not a NeMo manifest line (JSON with audio_filepath, duration, text)") from None
        audio = audio if audio.is_absolute() else (spec.path.parent / audio).resolve()
        if not audio.is_file():
            raise FinetuneError(f"{spec.path}:{n}: audio {audio} does not exist")
        out.rows.append(_asr_row(audio, text, None, rec.get("offset") or 0.0, rec.get("duration") if rec.get("offset") else None,
                                 f"{audio.name}", lineage("files", f"{spec.path.name}:{n}", None, when)))
    return out


def read_audio_manifest(spec: SourceSpec) -> SourceRows:
    out = SourceRows(spec, files={str(spec.path): _sha(spec.path)})
    when = _file_when(spec.path)
    for n, line in enumerate(spec.path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            audio = (spec.path.parent / rec["audio"]).resolve()
            text = rec["text"]
        except (ValueError, KeyError, TypeError):
            raise FinetuneError(f"{spec.path}:{n}: expected JSON with audio, channel, text") from None
        if not audio.is_file():
            raise FinetuneError(f"{spec.path}:{n}: audio {audio} does not exist")
        who = rec.get("source")
        out.rows.append(_asr_row(audio, text, rec.get("channel"), 0.0, None, f"{audio.name}:{rec.get('channel')}",
                                 lineage("files", f"{spec.path.name}:{n}", who, when)))
    return out


def read_transcript_reviews(spec: SourceSpec, ws: Workspace) -> SourceRows:
    """Dashboard reviews whose sentence has stored call audio: the corrected text with the
    sentence's span of its channel. Reviews of calls without audio are skipped (counted)."""
    from sqlalchemy import select
    from sqlmodel import Session

    from callsense.store.review import labelled_sentences
    from callsense.store.review import CallAudio
    from callsense.store.schema import Sentence

    out = SourceRows(spec)
    reviewed = labelled_sentences(ws.engine)
    blob_root = ws.settings.resolved_blob_dir
    with Session(ws.engine) as s:
        audio_of = {a.call_id: a for a in s.exec(select(CallAudio)).scalars()}
        for r in reviewed:
            ref = f"{r.call_id}/{r.channel}/{r.utterance_idx}/{r.idx}"
            attached = audio_of.get(r.call_id)
            sent = s.exec(select(Sentence).where(Sentence.call_id == r.call_id, Sentence.channel == r.channel,
                                                 Sentence.utterance_idx == r.utterance_idx, Sentence.idx == r.idx)).scalars().first()
            if attached is None or sent is None:
                out.skipped.append(f"{ref}: no stored audio for the call" if attached is None else f"{ref}: sentence gone")
                continue
            blob = blob_root / attached.blob[:2] / attached.blob
            if not blob.is_file():
                out.skipped.append(f"{ref}: audio blob missing from {blob_root}")
                continue
            out.rows.append(_asr_row(blob, r.text, r.channel, sent.start, max(0.05, sent.end - sent.start), f"call:{r.call_id}",
                                     lineage("dashboard-review", ref, r.reviewer, utc_iso(r.reviewed_at))))
    return out


READERS: dict[tuple[str, str], Callable] = {
    ("sentiment", "meld"): lambda spec, ws: read_meld(spec),
    ("sentiment", "review"): read_sentiment_reviews,
    ("intent-slot", "nemo"): lambda spec, ws: read_nemo_intents(spec),
    ("intent-slot", "seq"): lambda spec, ws: read_seq(spec),
    ("intent-slot", "dialog"): read_dialog_turns,
    ("asr", "nemo-asr"): lambda spec, ws: read_nemo_asr(spec),
    ("asr", "audio-manifest"): lambda spec, ws: read_audio_manifest(spec),
    ("asr", "review"): read_transcript_reviews,
}


def read_source(kind: str, spec: SourceSpec, ws: Workspace) -> SourceRows:
    """Rows with ``source_split`` set where it is fixed: everything of a ``@SPLIT`` source, and
    the dev/test rows a source names itself. Rows a source calls train (or nothing) are left
    to the split plan, which may carve dev and test out of them by conversation."""
    rows = READERS[(kind, spec.type)](spec, ws)
    for row in rows.rows:
        if spec.split:
            row["source_split"] = spec.split
        elif row.get("source_split") not in ("dev", "test"):
            row["source_split"] = None
    return rows
