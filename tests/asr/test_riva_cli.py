"""The speech commands as a user runs them: `callsense riva-serve` in its own process
(stopped by its PID with SIGTERM), `riva-check`, `transcribe --engine riva --stream`,
`tts`, and one-line errors for a taken port and a dead server."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
import wave

import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")


def callsense(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callsense", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def read_until(proc: subprocess.Popen, pattern: str, timeout: float) -> re.Match:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=1):
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if m := re.search(pattern, line):
            return m
    proc.kill()
    pytest.fail(f"riva-serve did not print {pattern!r} in {timeout} s; output:\n{''.join(seen)}\n{proc.stderr.read()}")


@pytest.fixture(scope="module")
def served():
    proc = subprocess.Popen([sys.executable, "-m", "callsense", "riva-serve", "--port", "0", "--workers", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        address = read_until(proc, r"listening on (\S+:\d+)", timeout=180).group(1)
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # by the PID this fixture started
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_riva_check_lists_the_models(served):
    _, address = served
    done = callsense("riva-check", "--url", address)
    assert done.returncode == 0, done.stderr
    assert "SERVING" in done.stdout and "callsense-moonshine-en-US" in done.stdout and "type=online" in done.stdout
    assert "callsense-sentiment" in done.stdout


def test_transcribe_streaming_through_riva_serve(served, shared_audio, normalize):
    _, address = served
    done = callsense("transcribe", "--engine", "riva", "--stream", str(shared_audio / "spk1_snt5.wav"),
                     env={"CALLSENSE_RIVA_URL": address})
    assert done.returncode == 0, done.stderr
    finals = [line[3:] for line in done.stdout.splitlines() if line.startswith("## ")]
    assert normalize(" ".join(finals)) == "sunday is the best part of the week"


def test_tts_command_writes_a_wav(tmp_path, served):
    out = tmp_path / "hello.wav"
    done = callsense("tts", "I would like a refund for the double charge on my bill.", "-o", str(out), "--rate", "16000")
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as w:
        assert w.getframerate() == 16000 and 2.0 < w.getnframes() / 16000 < 6.0
    _, address = served
    via_riva = tmp_path / "riva.wav"
    done = callsense("tts", "Hello there.", "-o", str(via_riva), "--engine", "riva", env={"CALLSENSE_RIVA_URL": address})
    assert done.returncode == 0, done.stderr
    with wave.open(str(via_riva)) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 11025


def test_taken_port_and_dead_server_are_one_line_errors(served, shared_audio):
    _, address = served
    port = address.rsplit(":", 1)[1]
    taken = callsense("riva-serve", "--port", port, timeout=120)
    assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "Traceback" not in taken.stderr
    dead = callsense("riva-check", "--url", "127.0.0.1:9")
    assert dead.returncode == 1 and "127.0.0.1:9 does not answer" in dead.stderr and "Traceback" not in dead.stderr
    dead = callsense("transcribe", "--engine", "riva", str(shared_audio / "spk2_snt2.wav"),
                     env={"CALLSENSE_RIVA_URL": "127.0.0.1:9", "CALLSENSE_RIVA_RETRIES": "1", "CALLSENSE_RIVA_RETRY_BACKOFF_S": "0.1"})
    assert dead.returncode == 1 and "Traceback" not in dead.stderr
    assert re.search(r"error: Riva ASR at 127\.0\.0\.1:9 .* unavailable after 2 tries", " ".join(dead.stderr.split()))


def test_sigterm_stops_the_server(served):
    proc, address = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "stopping" in proc.stdout.read()
