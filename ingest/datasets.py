"""Pre-split datasets (TR-4910: 50,000 one-utterance files from 560 conversations) imported
as calls: `callsense import-dataset PATH`.

PATH is either

- a folder tree: one sub-folder per conversation (a folder holding audio files directly is
  one conversation itself); its audio files, searched recursively, are the utterances in
  order of their file names. The speaker of a file is a role of `CALLSENSE_CHANNEL_ROLES`
  (agent, customer) that appears as a word of its file name (`0001_agent.wav`,
  `customer-0002.flac`), else the name of the sub-folder it is in under the conversation
  folder (`call1/agent/0001.wav`), else "speaker";
- or a NeMo-style JSONL manifest, one utterance per line:
  `{"audio_filepath", "duration", "offset"?, "speaker"?, "conversation"? or "call_id"?, "text"?}`.
  Utterances are grouped by `conversation` (or `call_id`; else the folder of the audio file)
  and kept in manifest order; `offset`/`duration` cut the utterance out of its file. Paths
  are resolved relative to the manifest's folder and must stay inside it: a path with `..`
  or one that resolves outside (absolute, or through a symlink) is refused, nothing outside
  is read. The reference `text` is not stored (no column for it).

Each conversation becomes one call of mode `dataset` whose speakers are channels (the roles
first, in `channel_roles` order). Every file passes the checks of a recorded call (regular
file, `max_input_bytes`, header probe within the audio limits) and is decoded to 16 kHz
mono; the utterances of a channel are packed into ASR windows like the segment stage does
and sent as `UtteranceBatch` events to the transcribe stage: ASR, sentiment and store are the
same code as for recorded calls. A refused file is a (non-fatal) dead letter naming it; its
conversation goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import numpy as np

from callsense.audio.decode import AudioLimits, decode_audio, probe_audio
from callsense.audio.pcm import float_to_s16le
from callsense.audio.resample import TARGET_RATE
from callsense.core.errors import BadInput
from callsense.core.events import CallOpened, CallSegmented, DeadLetter, EventModel, UtteranceBatch, UtteranceSpan
from callsense.core.settings import Settings
from callsense.ingest.sources import AUDIO_SUFFIXES, display_name, read_input
from callsense.store.blobs import BlobStore

# Silence between packed utterances (as the segment stage packs them).
GAP_S = 0.3
MANIFEST_SUFFIXES = {".json", ".jsonl", ".manifest"}


@dataclass
class DatasetFile:
    path: Path
    label: str  # how it is named in messages (relative to the dataset)
    speaker: str
    offset: float = 0.0
    duration: float | None = None
    text: str | None = None


@dataclass
class DatasetConversation:
    name: str
    files: list[DatasetFile] = field(default_factory=list)


@dataclass
class Dataset:
    conversations: list[DatasetConversation]
    refused: list[str]  # entries refused while listing ("label: reason")


def _inside(root: Path, p: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- listing


def _speaker_of(settings: Settings, name: str, subfolder: str | None) -> str:
    words = {w.lower() for w in re.split(r"[^A-Za-z0-9]+", Path(name).stem) if w}
    for role in settings.pipeline.channel_roles:
        if role.lower() in words:
            return role
    return subfolder or "speaker"


def _audio_files(folder: Path) -> list[Path]:
    return [q for q in folder.rglob("*") if q.suffix.lower() in AUDIO_SUFFIXES and not q.is_dir()]


def list_folder(root: Path, settings: Settings) -> Dataset:
    real_root = root.resolve()
    groups: list[tuple[str, Path]] = []
    direct = sorted(q for q in root.iterdir() if q.suffix.lower() in AUDIO_SUFFIXES and not q.is_dir())
    if direct:
        groups.append((display_name(root), root))
    for sub in sorted(q for q in root.iterdir() if q.is_dir()):
        if _audio_files(sub):
            groups.append((display_name(sub), sub))
    convs: list[DatasetConversation] = []
    refused: list[str] = []
    total = 0
    for name, folder in groups:
        conv = DatasetConversation(name)
        files = direct if folder == root else _audio_files(folder)
        for f in sorted(files, key=lambda q: (q.name, str(q))):
            rel = f.relative_to(folder)
            label = str(f.relative_to(root)) if folder != root else f.name
            total += 1
            if total > settings.pipeline.dataset_max_files:
                raise BadInput(f"more than {settings.pipeline.dataset_max_files} files (CALLSENSE_DATASET_MAX_FILES)")
            if not _inside(real_root, f.resolve()):
                refused.append(f"{display_name(label)}: refused: it resolves outside the dataset folder")
                continue
            sub = rel.parts[0] if len(rel.parts) > 1 else None
            conv.files.append(DatasetFile(f, display_name(label), _speaker_of(settings, f.name, sub)))
        if conv.files:
            convs.append(conv)
    return Dataset(convs, refused)


def _number(entry: dict, key: str, where: str) -> float | None:
    v = entry.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise BadInput(f"{where}: {key} {v!r} is not a non-negative number")
    return float(v)


def list_manifest(manifest: Path, settings: Settings) -> Dataset:
    """The manifest's conversations. The manifest itself is read like a text input (regular
    file, capped at text_max_input_bytes); a malformed line is refused alone."""
    from callsense.ingest.conversations import read_text_input

    root = manifest.parent.resolve()
    text = read_text_input(manifest, settings).decode("utf-8", "replace")
    convs: dict[str, DatasetConversation] = {}
    refused: list[str] = []
    total = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{display_name(manifest)} line {n}"
        total += 1
        if total > settings.pipeline.dataset_max_files:
            raise BadInput(f"more than {settings.pipeline.dataset_max_files} entries (CALLSENSE_DATASET_MAX_FILES)")
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise BadInput(f"{where}: not a JSON object")
            rel = entry.get("audio_filepath")
            if not isinstance(rel, str) or not rel.strip():
                raise BadInput(f"{where}: no audio_filepath")
            pure = PurePath(rel)
            if ".." in pure.parts:
                raise BadInput(f"{where}: refused: {rel!r} has '..' (paths must stay inside the manifest's folder)")
            target = (Path(rel) if pure.is_absolute() else root / rel).resolve()
            if not _inside(root, target):
                raise BadInput(f"{where}: refused: {rel!r} is outside the manifest's folder")
            offset = _number(entry, "offset", where) or 0.0
            duration = _number(entry, "duration", where)
            conv_key = entry.get("conversation", entry.get("call_id"))
            if conv_key is None:
                parent = target.parent.relative_to(root)
                conv_key = str(parent) if parent.parts else manifest.stem
            speaker = entry.get("speaker")
            speaker = str(speaker) if speaker not in (None, "") else _speaker_of(settings, target.name, None)
            ref = entry.get("text") if isinstance(entry.get("text"), str) else None
        except ValueError as e:  # json errors and BadInput
            refused.append(str(e) if isinstance(e, BadInput) else f"{where}: not JSON ({getattr(e, 'msg', e)})")
            continue
        label = display_name(rel) if "/" not in rel else rel.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        conv = convs.setdefault(str(conv_key), DatasetConversation(str(conv_key)))
        conv.files.append(DatasetFile(target, label, speaker, offset, duration, ref))
    if not convs and not refused:
        raise BadInput("no entries in the manifest")
    return Dataset(list(convs.values()), refused)


def list_dataset(path: Path, settings: Settings) -> Dataset:
    if path.is_dir():
        return list_folder(path, settings)
    if path.suffix.lower() in MANIFEST_SUFFIXES or path.is_file():
        return list_manifest(path, settings)
    raise BadInput("neither a folder nor a manifest file")


# --------------------------------------------------------------------------- events


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:40].strip("-") or "conversation"


@dataclass
class DatasetCall:
    call_id: str
    name: str
    events: list[EventModel]
    references: dict[tuple[int, int], str]  # (channel, index) -> reference text, where the manifest had one
    utterances: int


def conversation_call(conv: DatasetConversation, blobs: BlobStore, settings: Settings,
                      agent_id: str | None = None) -> DatasetCall:
    """One conversation's events: CallOpened (mode dataset), UtteranceBatch per channel window
    (to the transcribe stage), CallSegmented; a refused file becomes a non-fatal DeadLetter.
    Raises BadInput when no file of the conversation can be used."""
    limits = AudioLimits.from_settings(settings)
    roles = settings.pipeline.channel_roles
    present = list(dict.fromkeys(f.speaker for f in conv.files))
    speakers = [r for r in roles if r in present] + [s for s in present if s not in roles]
    channel_of = {s: c for c, s in enumerate(speakers)}
    digest = hashlib.sha256(conv.name.encode("utf-8", "surrogatepass"))
    decoded: list[tuple[DatasetFile, np.ndarray]] = []
    refused: list[str] = []
    for f in conv.files:
        try:
            data = read_input(f.path, settings.pipeline.max_input_bytes)
            probe_audio(data, limits)
            audio = decode_audio(data, settings.pipeline.decoder, limits).channels
            mono = audio.mean(axis=0).astype(np.float32) if audio.shape[0] > 1 else audio[0]
            a = int(round(f.offset * TARGET_RATE))
            b = mono.size if f.duration is None else a + int(round(f.duration * TARGET_RATE))
            mono = mono[a:b]
            if mono.size == 0:
                raise BadInput("no audio in the given offset/duration")
        except BadInput as e:
            refused.append(f"{f.label}: refused: {e}")
            continue
        digest.update(f"{f.label}\0{f.speaker}\0{f.offset}\0{f.duration}\0".encode("utf-8", "surrogatepass"))
        digest.update(hashlib.sha256(data).digest())
        decoded.append((f, mono))
    if not decoded:
        raise BadInput(f"conversation {conv.name}: no usable audio file" + (f" ({refused[0]})" if refused else ""))
    call_id = f"{_slug(conv.name)}-{digest.hexdigest()[:10]}"
    letters = [DeadLetter(stage="ingest", call_id=call_id, reason=r, fatal=False) for r in refused]
    window = settings.pipeline.asr_window_s * TARGET_RATE
    gap = np.zeros(int(GAP_S * TARGET_RATE), np.float32)
    pending: dict[int, tuple[list[np.ndarray], list[UtteranceSpan], int]] = {}
    batches: list[EventModel] = []

    def flush(channel: int) -> None:
        pieces, spans, _ = pending.pop(channel, ([], [], 0))
        if spans:
            batches.append(UtteranceBatch(call_id=call_id, channel=channel, speaker=speakers[channel], agent_id=agent_id,
                                          utterances=spans, audio=blobs.put(float_to_s16le(np.concatenate(pieces)))))

    counts = {c: 0 for c in range(len(speakers))}
    references: dict[tuple[int, int], str] = {}
    cursor = 0.0
    for f, mono in decoded:
        c = channel_of[f.speaker]
        pieces, spans, length = pending.get(c, ([], [], 0))
        if spans and length + gap.size + mono.size > window:
            flush(c)
            pieces, spans, length = [], [], 0
        if spans:
            pieces.append(gap)
            length += gap.size
        seconds = mono.size / TARGET_RATE
        spans.append(UtteranceSpan(index=counts[c], start=cursor, end=cursor + seconds, offset=length / TARGET_RATE))
        pieces.append(mono)
        length += mono.size
        pending[c] = (pieces, spans, length)
        if f.text:
            references[(c, counts[c])] = f.text
        counts[c] += 1
        cursor += seconds
    for c in list(pending):
        flush(c)
    events: list[EventModel] = [CallOpened(call_id=call_id, source_name=display_name(conv.name), mode="dataset",
                                           channels=len(speakers), speakers=speakers, agent_id=agent_id,
                                           started_at=time.time())]
    events += batches
    events.append(CallSegmented(call_id=call_id, utterances_per_channel=counts, duration_s=cursor))
    events += letters
    return DatasetCall(call_id, conv.name, events, references, sum(counts.values()))


def word_error_rate(pairs: list[tuple[str, str]]) -> float | None:
    """WER of (reference, hypothesis) pairs, words compared lower-case without punctuation."""
    def words(s: str) -> list[str]:
        return re.sub(r"[^\w\s']", " ", s.lower()).split()

    errors = total = 0
    for ref, hyp in pairs:
        r, h = words(ref), words(hyp)
        prev = list(range(len(h) + 1))
        for i, rw in enumerate(r, 1):
            cur = [i] + [0] * len(h)
            for j, hw in enumerate(h, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
            prev = cur
        errors += prev[-1]
        total += len(r)
    return errors / total if total else None
