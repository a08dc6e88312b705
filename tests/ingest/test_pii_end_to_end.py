"""PII never reaches the store, the data folder or the logs: a two-channel call synthesized
with espeak-ng, the customer reading out a card number, a phone number and an e-mail address,
goes through `callsense process`; then every table of the SQLite store, every file of the data
folder (except the original recording's blob) and everything the command printed are searched
for the seeded PII, written or spoken, in any spacing."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import wave

import numpy as np
import pytest

from callsense.asr.tts.base import create_tts_engine
from callsense.core.settings import Settings

RATE = 16000
DIALOGUE = [
    ("agent", "Thank you for calling Northwind billing. How can I help you today?"),
    ("customer", "Hi. I want to pay my bill. My card number is four one one one, one one one one, "
                 "one one one one, one one one one."),
    ("agent", "Thank you. And a phone number in case we get cut off?"),
    ("customer", "My phone number is two one two, five five five, zero one four seven."),
    ("agent", "And where should we send the receipt?"),
    ("customer", "My email is john dot smith at example dot com."),
    ("agent", "Perfect, you are all set. Have a nice day."),
]
CARD, PHONE = "4111111111111111", "2125550147"


def _spaced(digits: str) -> re.Pattern:
    """The digits with anything but digits (spaces, dashes, dots) between them."""
    return re.compile(r"\D{0,3}".join(digits))


LEAKS = [
    _spaced(CARD), _spaced(PHONE), _spaced("5550147"),
    re.compile(r"four[\s,-]+one[\s,-]+one[\s,-]+one", re.I),
    re.compile(r"(?:five|5)[\s,-]+(?:five|5)[\s,-]+(?:five|5)[\s,-]+(?:oh|zero|0)[\s,-]+(?:one|1)", re.I),
    re.compile(r"john\s*(?:\.|dot)\s*smith", re.I), re.compile(r"smith\s*(?:@|at)\s*example", re.I),
    re.compile(r"example\s*(?:\.|dot)\s*com", re.I),
]


def _leaks(text: str) -> list[str]:
    return [m.group() for p in LEAKS for m in p.finditer(text)]


@pytest.fixture(scope="module")
def call_wav(tmp_path_factory):
    tts = create_tts_engine(Settings())
    voices = {"agent": "en-us", "customer": "en-gb"}
    channels = {"agent": [], "customer": []}
    gap = np.zeros(int(0.8 * RATE), np.float32)
    for who, text in DIALOGUE:
        clip = tts.synthesize(text, voice=voices[who], sample_rate=RATE).samples.astype(np.float32)
        other = "customer" if who == "agent" else "agent"
        channels[who] += [clip, gap]
        channels[other] += [np.zeros_like(clip), gap]
    stereo = np.stack([np.concatenate(channels["agent"]), np.concatenate(channels["customer"])], axis=1)
    path = tmp_path_factory.mktemp("call") / "billing-call.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_no_seeded_pii_in_tables_files_or_logs(call_wav, tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "CALLSENSE_DATA_DIR": str(data), "CALLSENSE_PII_REDACTION": "mask", "COLUMNS": "200"}
    for name in ("CALLSENSE_DATABASE_URL", "CALLSENSE_BLOB_DIR"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-m", "callsense", "process", str(call_wav)], env=env,
                         capture_output=True, text=True, timeout=600)
    logs = out.stdout + out.stderr
    assert out.returncode == 0, logs
    assert not _leaks(logs), logs

    db = next(data.rglob("*.db"))
    con = sqlite3.connect(db)
    dump = []
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        for row in con.execute(f'SELECT * FROM "{table}"'):
            dump.append(f"{table}: " + " | ".join(str(v) for v in row))
    sentences = [t for (t,) in con.execute("SELECT text FROM sentences WHERE call_id IS NOT NULL")] \
        if "sentences" in {t for (t,) in con.execute("SELECT name FROM sqlite_master")} else []
    con.close()
    table_text = "\n".join(dump)
    assert not _leaks(table_text), [line for line in dump if _leaks(line)]
    masks = " ".join(sentences)
    # The card is [CARD] when the ASR engine got every digit right (Luhn-valid), else [ACCOUNT]
    # (a long digit run): redacted either way.
    card = [t for t in sentences if "card number" in t.lower()]
    assert card and ("[CARD]" in card[0] or "[ACCOUNT]" in card[0]), sentences
    assert "[PHONE]" in masks and "[EMAIL]" in masks, sentences

    original = hashlib.sha256(call_wav.read_bytes()).hexdigest()
    for path in data.rglob("*"):
        if not path.is_file() or path.name.startswith(original):
            continue
        content = path.read_bytes()
        for needle in (CARD.encode(), PHONE.encode(), b"john.smith", b"smith@example", b"john dot smith"):
            assert needle not in content, f"{needle!r} in {path}"
        if path.suffix in {".log", ".txt", ".json", ".jsonl"}:
            assert not _leaks(content.decode("utf-8", "replace")), path
