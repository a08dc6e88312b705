"""`callsense process` on a batch mixing one good call with every kind of bad input: the
good one is stored, each bad one is a dead letter with its reason, no traceback."""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "samples" / "stereo_diarization.wav"


def wav_bytes(rate: int, channels: int, bits: int, data: bytes = bytes(92_000)) -> bytes:
    block = channels * max(bits, 8) // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


@pytest.fixture
def batch(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(GOOD, d / "good.wav")
    os.mkfifo(d / "pipe.wav")
    (d / "zero.wav").symlink_to("/dev/zero")
    (d / "folder.wav").mkdir()
    (d / "big.wav").write_bytes(GOOD.read_bytes() + bytes(200_000))
    (d / "onehz.wav").write_bytes(wav_bytes(1, 1, 16))
    (d / "bits0.wav").write_bytes(wav_bytes(8000, 1, 0))
    # A valid call whose name is not UTF-8 (1 s of silence at 8 kHz).
    latin1 = os.fsencode(d) + b"/caf\xe9.wav"
    with open(latin1, "wb") as fh:
        fh.write(wav_bytes(8000, 1, 16, data=bytes(16_000)))
    env = {**os.environ, "CALLSENSE_DATA_DIR": str(tmp_path / "data"), "CALLSENSE_MAX_INPUT_BYTES": str(GOOD.stat().st_size + 1000),
           "COLUMNS": "200"}
    env.pop("CALLSENSE_DATABASE_URL", None)
    env.pop("CALLSENSE_BLOB_DIR", None)
    return d, env, Settings(data_dir=tmp_path / "data")


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "callsense", *args], env=env, capture_output=True, text=True, timeout=600)


def test_bad_inputs_are_dead_letters_and_the_batch_goes_on(batch):
    folder, env, settings = batch
    out = cli(env, "process", str(folder))
    text = out.stdout + out.stderr
    assert out.returncode == 3, text  # some inputs refused (documented in `process --help`)
    assert "Traceback" not in text and "internal error" not in text
    store = PipelineResources(settings).store
    calls = {c.source_name: c for c in store.list_calls(limit=100)}
    assert calls["good.wav"].status == "done"
    assert calls["caf\ufffd.wav"].status == "done"  # the non-UTF-8 name is stored, readable
    assert set(calls) == {"good.wav", "caf\ufffd.wav"}
    reasons = {d.reason.split(":", 1)[0]: d.reason for d in store.dead_letters(100)}
    assert set(reasons) == {"pipe.wav", "zero.wav", "folder.wav", "big.wav", "onehz.wav", "bits0.wav"}, reasons
    assert "FIFO" in reasons["pipe.wav"]
    assert "character device" in reasons["zero.wav"]
    assert "directory" in reasons["folder.wav"]
    assert "too large" in reasons["big.wav"]
    assert "sample rate 1 Hz" in reasons["onehz.wav"]
    assert "header" in reasons["bits0.wav"] or "codec" in reasons["bits0.wav"]
    # No blob was written for a refused input: only the two good recordings (plus windows).
    listed = cli(env, "dead-letters").stdout
    assert "pipe.wav" in listed and "onehz.wav" in listed
