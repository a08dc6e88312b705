"""PII in the stored recording (CALLSENSE_PII_AUDIO): a two-channel call synthesized with
espeak-ng, the customer reading out a card number and a phone number, goes through `callsense
process` (in this process). With `silence` the call ends up naming a recording that is silent
over the padded times of the redacted words and byte-identical elsewhere, and no blob left in the
blob store holds the clear audio of those times (the original and the utterance windows that
held them are withdrawn). A worker killed between the steps, events redelivered afterwards and
the same file processed again never leave the call naming a missing blob or the clear audio
behind. With `keep` the recording is the input, byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from callsense.asr.tts.base import create_tts_engine
from callsense.audio.decode import decode_native
from callsense.audio.redact import pad_spans
from callsense.cli import app
from callsense.core.claims import AudioRef
from callsense.core.events import CallRecorded, UtteranceBatch, UtteranceSpan
from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.stage import STAGE_ORDER
from callsense.ingest.transports.inprocess import InProcessTransport
from callsense.store.blobs import WITHDRAWN_SUFFIX

RATE = 16000
PAD_S = 0.25
# (speaker, text, PII read out right after the text or None)
DIALOGUE = [
    ("agent", "Thank you for calling Northwind billing. How can I help you today?", None),
    ("customer", "Hi. I want to pay my bill. My card number is",
     "four one one one, one one one one, one one one one, one one one one."),
    ("agent", "Thank you. And a phone number in case we get cut off?", None),
    ("customer", "Sure. My phone number is", "two one two, five five five, zero one four seven."),
    ("agent", "Perfect, you are all set. Have a nice day.", None),
    ("customer", "Thanks, you too. Bye.", None),
]


@dataclass
class Run:
    wav: Path
    data_dir: Path
    call_id: str
    pii_said: list[tuple[float, float]]  # where the PII's voice is in the customer channel (s)
    env: dict[str, str]

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def original(self) -> bytes:
        return self.wav.read_bytes()

    @property
    def original_blob(self) -> str:
        return hashlib.sha256(self.original).hexdigest()

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(next(self.data_dir.rglob("*.db")))

    def call(self) -> dict:
        with self.db() as con:
            con.row_factory = sqlite3.Row
            return dict(con.execute("SELECT * FROM calls WHERE id = ?", (self.call_id,)).fetchone())

    def spans(self) -> list[tuple[float, float]]:
        with self.db() as con:
            rows = con.execute("SELECT pii_spans FROM utterances WHERE call_id = ? AND pii_spans IS NOT NULL",
                               (self.call_id,)).fetchall()
        return sorted((a, b) for (text,) in rows for _, a, b in json.loads(text))

    def clear_rows(self) -> list[tuple]:
        with self.db() as con:
            return con.execute("SELECT call_id, blob, role FROM clear_audio_blobs").fetchall()

    def blob_path(self, name: str) -> Path:
        return self.blob_dir / name[:2] / name

    def blobs(self) -> list[Path]:
        return sorted(p for p in self.blob_dir.rglob("*") if p.is_file() and len(p.name) == 64)


def _voiced(clip: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(clip) > 0.02)
    return int(loud[0]), int(loud[-1]) + 1


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    tts = create_tts_engine(Settings())
    voices = {"agent": "en-us", "customer": "en-gb"}
    channels: dict[str, list[np.ndarray]] = {"agent": [], "customer": []}
    gap = np.zeros(int(0.8 * RATE), np.float32)
    said, at = [], 0
    for who, text, pii in DIALOGUE:
        clip = tts.synthesize(text, voice=voices[who], sample_rate=RATE).samples.astype(np.float32)
        if pii:  # synthesized apart, so its place in the call is known
            a, b = _voiced(clip)
            clip = clip[:b + int(0.1 * RATE)]
            digits = tts.synthesize(pii, voice=voices[who], sample_rate=RATE).samples.astype(np.float32)
            da, db = _voiced(digits)
            said.append(((at + clip.size + da) / RATE, (at + clip.size + db) / RATE))
            clip = np.concatenate([clip, digits])
        other = "customer" if who == "agent" else "agent"
        channels[who] += [clip, gap]
        channels[other] += [np.zeros_like(clip), gap]
        at += clip.size + gap.size
    stereo = np.stack([np.concatenate(channels["agent"]), np.concatenate(channels["customer"])], axis=1)
    path = tmp_path_factory.mktemp("call") / "card-payment.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes())
    return path, said


def _process(wav: Path, data_dir: Path, **settings: str) -> dict[str, str]:
    """`callsense process WAV` in this process, with these CALLSENSE_* settings."""
    env = {"CALLSENSE_DATA_DIR": str(data_dir), **{f"CALLSENSE_{k.upper()}": v for k, v in settings.items()}}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        result = CliRunner().invoke(app, ["process", str(wav)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return env


def _copy(run: Run, dest: Path) -> Run:
    shutil.copytree(run.data_dir, dest)
    return Run(run.wav, dest, run.call_id, run.pii_said, {**run.env, "CALLSENSE_DATA_DIR": str(dest)})


@pytest.fixture(scope="module")
def redacted(call_wav, tmp_path_factory) -> Run:
    wav, said = call_wav
    data = tmp_path_factory.mktemp("silence") / "data"
    # Every utterance window by claim-check (not inline), so the windows' fate is tested too.
    env = _process(wav, data, pii_audio="silence", inline_audio_max_bytes="16000")
    stem_id = f"card-payment-{hashlib.sha256(wav.read_bytes()).hexdigest()[:10]}"
    return Run(wav, data, stem_id, said, env)


def _frames(spans, n: int) -> np.ndarray:
    inside = np.zeros(n, bool)
    for a, b in spans:
        inside[max(0, int(np.floor(a * RATE))):int(np.ceil(b * RATE))] = True
    return inside


def _samples(data: bytes) -> np.ndarray:
    """A recording (any format) or a window (raw 16 kHz s16le) -> (channels, n) float."""
    if data[:4] in (b"RIFF", b"fLaC"):
        pcm, rate, _ = decode_native(data)
        assert rate == RATE
        return pcm
    return (np.frombuffer(data, "<i2").astype(np.float32) / 32768)[None, :]


def _max_similarity(signal: np.ndarray, piece: np.ndarray) -> float:
    """Highest normalised cross-correlation of `piece` anywhere in `signal` (1.0: it is there)."""
    if signal.size < piece.size:
        return 0.0
    size = 1 << (signal.size + piece.size).bit_length()
    corr = np.fft.irfft(np.fft.rfft(signal, size) * np.conj(np.fft.rfft(piece, size)), size)[:signal.size - piece.size + 1]
    energy = np.concatenate([[0.0], np.cumsum(signal.astype(np.float64) ** 2)])
    window = energy[piece.size:] - energy[:-piece.size]
    norm = np.linalg.norm(piece)
    return float((corr / (np.sqrt(np.maximum(window, 1e-3 * norm ** 2)) * norm)).max())


def _clear_pieces(run: Run, spans) -> list[np.ndarray]:
    """The customer's clear audio inside the padded spans, in 0.4 s voiced pieces."""
    customer = _samples(run.original)[1]
    pieces = []
    for a, b in spans:
        seg = customer[int(a * RATE):int(b * RATE)]
        for i in range(0, seg.size - int(0.4 * RATE), int(0.4 * RATE)):
            piece = seg[i:i + int(0.4 * RATE)]
            if np.sqrt((piece ** 2).mean()) > 0.02:
                pieces.append(piece)
    return pieces


def _assert_settled(run: Run, redacted_blob: str | None = None) -> None:
    """The call names its redacted recording, which exists; the original and every clear row are gone."""
    call = run.call()
    assert call["status"] == "done" and call["audio_redaction"] == "silenced", call
    assert call["audio_blob"] != run.original_blob and run.blob_path(call["audio_blob"]).is_file()
    if redacted_blob is not None:
        assert call["audio_blob"] == redacted_blob
    assert not run.blob_path(run.original_blob).exists()
    assert run.clear_rows() == []


# ---- silence -----------------------------------------------------------------------------

def test_recording_silent_over_padded_spans_and_unchanged_elsewhere(redacted):
    _assert_settled(redacted)
    spans = redacted.spans()
    assert len(spans) >= 2, spans  # the card and the phone number, at least
    padded = pad_spans(spans, PAD_S)
    stored = redacted.blob_path(redacted.call()["audio_blob"]).read_bytes()
    original = redacted.original
    assert len(stored) == len(original) and stored[:44] == original[:44]  # the same WAV, patched where it lay
    got, before = _samples(stored), _samples(original)
    inside = _frames(padded, got.shape[1])
    assert np.sqrt((got[:, inside] ** 2).mean()) < 1e-4  # silent over every padded span, on both channels
    assert np.array_equal(got[:, ~inside], before[:, ~inside])  # and not one sample changed elsewhere
    # The padded spans cover the PII where it was really said (word times are estimates).
    for a, b in redacted.pii_said:
        said = _frames([(a, b)], got.shape[1])
        voiced = said & (np.abs(before[1]) > 0.02)
        covered = (voiced & inside).sum() / voiced.sum()
        assert covered >= 0.9, f"only {covered:.0%} of the PII said at {a:.2f}-{b:.2f} s is silenced; spans {padded}"


def test_no_blob_holds_the_clear_audio_of_the_spans(redacted):
    pieces = _clear_pieces(redacted, pad_spans(redacted.spans(), PAD_S))
    assert len(pieces) >= 5
    names = [p.name for p in redacted.blobs()]
    assert redacted.original_blob not in names
    for path in redacted.blobs():
        audio = _samples(path.read_bytes())
        best = max(_max_similarity(ch, piece) for ch in audio for piece in pieces)
        # A copy scores > 0.99 (below); espeak says "number is" alike in both sentences (0.65).
        assert best < 0.9, f"{path.name} holds the clear PII audio (similarity {best:.2f})"
    # The original and the customer's windows were withdrawn for this call; the agent's windows stay.
    marks = sorted(redacted.blob_dir.rglob("*" + WITHDRAWN_SUFFIX))
    assert redacted.original_blob + WITHDRAWN_SUFFIX in {m.name for m in marks} and len(marks) >= 2
    assert all(m.read_text() == redacted.call_id + "\n" for m in marks)
    # The clear audio was there to be found before: the check would see it.
    assert max(_max_similarity(_samples(redacted.original)[1], piece) for piece in pieces[:3]) > 0.99


def test_call_page_plays_the_redacted_recording(redacted, monkeypatch):
    from sqlmodel import Session

    from callsense.dashboard.audio import channel_tracks, locate_call_audio, read_blob
    from callsense.store.schema import Call

    for k, v in redacted.env.items():
        monkeypatch.setenv(k, v)
    res = PipelineResources(Settings())
    with Session(res.store.engine) as s:
        call = s.get(Call, redacted.call_id)
    source = locate_call_audio(res.store.engine, res.settings, call)
    assert source is not None and source.blob == call.audio_blob and source.found_by == "call record"
    assert read_blob(res.settings, source) == redacted.blob_path(call.audio_blob).read_bytes()
    assert len(channel_tracks(read_blob(res.settings, source), call.channels)) == 2


# ---- crash safety ------------------------------------------------------------------------

def _sweep(run: Run) -> None:
    """A store stage starting again (a restarted worker, the next `callsense process`)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in run.env.items():
            mp.setenv(k, v)
        res = PipelineResources(Settings())
        assert build_stage("store", res).handle_batch([]) == []
        res.store.engine.dispose()


@pytest.mark.parametrize("killed", ["after writing the redacted copy", "after naming it", "after marking the original",
                                    "after deleting the original"])
def test_a_worker_killed_between_steps_never_loses_the_recording(redacted, tmp_path, killed):
    run = _copy(redacted, tmp_path / "data")
    redacted_blob = run.call()["audio_blob"]
    # What the kill left on disk and in the store, rebuilt from the finished run.
    original = run.blob_path(run.original_blob)
    mark = original.with_name(original.name + WITHDRAWN_SUFFIX)
    with run.db() as con:
        if killed == "after writing the redacted copy":  # the call still names the original
            con.execute("UPDATE calls SET audio_blob = ?, audio_redaction = NULL WHERE id = ?", (run.original_blob, run.call_id))
        if killed != "after writing the redacted copy":
            con.execute("INSERT INTO clear_audio_blobs (call_id, blob, role, added_at) VALUES (?, ?, 'recording', ?)",
                        (run.call_id, run.original_blob, time.time() + 5))
    if killed != "after deleting the original":
        original.write_bytes(run.original)
    if killed in ("after writing the redacted copy", "after naming it"):
        mark.unlink()
    call = run.call()
    assert run.blob_path(call["audio_blob"]).is_file()  # whatever the step, the call names a blob that exists
    _sweep(run)
    _assert_settled(run, redacted_blob)


def test_redelivered_events_and_the_same_file_again(redacted, tmp_path):
    run = _copy(redacted, tmp_path / "data")
    redacted_blob = run.call()["audio_blob"]
    with run.db() as con:
        sentences = con.execute("SELECT channel, utterance_idx, idx, text FROM sentences ORDER BY 1, 2, 3").fetchall()
    withdrawn_windows = [m.name[:64] for m in run.blob_dir.rglob("*" + WITHDRAWN_SUFFIX) if m.name[:64] != run.original_blob]
    assert withdrawn_windows
    with pytest.MonkeyPatch.context() as mp:
        for k, v in run.env.items():
            mp.setenv(k, v)
        res = PipelineResources(Settings())
        transport = InProcessTransport([build_stage(n, res) for n in STAGE_ORDER])
        # Kafka redelivers the call's recording and a window after a crash: skipped, nothing stored again.
        transport.publish([
            CallRecorded(call_id=run.call_id, source_name=run.wav.name,
                         audio=AudioRef(blob=run.original_blob, n_bytes=len(run.original))),
            UtteranceBatch(call_id=run.call_id, channel=1, speaker="customer",
                           utterances=[UtteranceSpan(index=1, start=5.0, end=9.0, offset=0.0)],
                           audio=AudioRef(blob=withdrawn_windows[0], n_bytes=128000)),
        ])
        transport.drain()
        res.store.engine.dispose()
    assert transport.unrouted == []
    with run.db() as con:
        assert con.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    _assert_settled(run, redacted_blob)
    # The same file processed again: its clear copy is withdrawn again, the call keeps its redacted recording.
    _process(run.wav, run.data_dir, pii_audio="silence", inline_audio_max_bytes="16000")
    _assert_settled(run, redacted_blob)
    with run.db() as con:
        assert con.execute("SELECT channel, utterance_idx, idx, text FROM sentences ORDER BY 1, 2, 3").fetchall() == sentences
        assert con.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0


# ---- keep --------------------------------------------------------------------------------

def test_keep_stores_the_recording_byte_identical(call_wav, tmp_path):
    wav, said = call_wav
    _process(wav, tmp_path / "data", pii_audio="keep")
    run = Run(wav, tmp_path / "data", f"card-payment-{hashlib.sha256(wav.read_bytes()).hexdigest()[:10]}", said, {})
    call = run.call()
    assert call["audio_blob"] == run.original_blob and call["audio_redaction"] == "kept"
    assert run.blob_path(run.original_blob).read_bytes() == wav.read_bytes()
    assert len(run.spans()) >= 2  # the transcript was redacted all the same
    assert "[CARD]" in " ".join(t for (t,) in run.db().execute("SELECT text FROM sentences")) or \
        "[ACCOUNT]" in " ".join(t for (t,) in run.db().execute("SELECT text FROM sentences"))


def test_a_recording_whose_pii_cannot_be_silenced_is_withdrawn_not_kept(tmp_path):
    from callsense.store.rows import CallOpening, CallSegmentation, ResultBatch, SentenceRow, UtteranceRow

    res = PipelineResources(Settings(data_dir=tmp_path / "data"))
    blob = res.blobs.put(b"not audio at all " * 100, keep=True).blob
    res.store.apply(ResultBatch(
        opened=[CallOpening("c1", "c1.bin", "recorded", 1, ("speaker",), time.time(), audio_blob=blob)],
        segmented=[CallSegmentation("c1", 1, 5.0)],
        utterances=[UtteranceRow("c1", 0, 0, "speaker", 0.0, 5.0, "my card is [CARD]", "m",
                                 (SentenceRow(0, "my card is [CARD]", 0.0, 5.0),), pii_spans=(("CARD", 1.0, 3.0),))]))
    [letter] = build_stage("store", res).handle_batch([])  # the sweep of a store stage starting
    call = res.store.get_call("c1")
    assert (call.status, call.audio_blob, call.audio_redaction) == ("done", None, "withdrawn")
    assert not letter.fatal and "recording withdrawn" in letter.reason
    assert not res.blobs.exists(blob) and res.blobs.withdrawn_calls(blob) == {"c1"}
