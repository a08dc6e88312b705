"""Issue 11's input bar: N fuzzed audio files (plus a few good ones) in ONE `callsense process`
call. Counts peak memory (the process tree's max RSS, from /usr/bin/time), tracebacks, hangs,
good files stored and bad files dead-lettered.

    python bench/bench_fuzz_inputs.py --files 1000 --good 10

Kinds of bad input: truncated and bit-flipped MP3/WAV, random bytes, WAV headers that lie
(1 Hz, 0 bits, 20000 channels, unknown format tag, a data size of 4 GB), empty files, a FIFO,
a symlink to /dev/zero, a folder named x.wav, non-UTF-8 names, an oversized file.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO

GOOD_SOURCES = sorted((REPO / "samples").glob("*.mp3"))


def wav(rate: int, channels: int, bits: int, n_bytes: int, tag: int = 1, data_size: int | None = None) -> bytes:
    block = max(1, channels * max(bits, 8) // 8)
    body = bytes(n_bytes)
    size = len(body) if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    return b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + body


def good_wav(seconds: float, rng: random.Random) -> bytes:
    import numpy as np

    t = np.arange(int(16000 * seconds)) / 16000
    tone = 0.2 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
    pcm = (tone * 32767).astype("<i2").tobytes()
    return wav(16000, 1, 16, 0)[:40] + struct.pack("<I", len(pcm)) + pcm


def make_inputs(folder: Path, n_bad: int, n_good: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    mp3s = [p.read_bytes() for p in GOOD_SOURCES] or [good_wav(1.0, rng)]
    good, bad = [], []
    for i in range(n_good):  # real calls, as a user would have them
        src = GOOD_SOURCES[i % len(GOOD_SOURCES)] if GOOD_SOURCES else None
        name = f"good-{i:03d}.mp3"
        (folder / name).write_bytes(src.read_bytes() if src else good_wav(2.0, rng))
        good.append(name)
    makers = [
        lambda: ("trunc.mp3", rng.choice(mp3s)[: rng.randint(10, 4000)]),
        lambda: ("flip.mp3", bytes(b ^ (0xFF if rng.random() < 0.02 else 0) for b in rng.choice(mp3s)[:60000])),
        lambda: ("random.wav", os.urandom(rng.randint(1, 50000))),
        lambda: ("random.mp3", os.urandom(rng.randint(1, 50000))),
        lambda: ("onehz.wav", wav(1, 1, 16, 92_000)),
        lambda: ("zerobits.wav", wav(16000, 1, 0, 2000)),
        lambda: ("channels.wav", wav(16000, 20000, 16, 4000)),
        lambda: ("tag.wav", wav(16000, 1, 16, 4000, tag=0x1234)),
        lambda: ("huge-declared.wav", wav(16000, 1, 16, 4000, data_size=0xFFFFFFF0)),
        lambda: ("empty.wav", b""),
        lambda: ("text.flac", b"fLaC" + bytes(rng.randint(0, 3000))),
    ]
    for i in range(n_bad):
        kind, data = makers[i % len(makers)]()
        stem, ext = kind.rsplit(".", 1)
        name = f"bad-{i:04d}-{stem}.{ext}"
        (folder / name).write_bytes(data)
        bad.append(name)
    specials = []
    os.mkfifo(folder / "pipe.wav")
    specials.append("pipe.wav")
    os.symlink("/dev/zero", folder / "zero.wav")
    specials.append("zero.wav")
    (folder / "folder.wav").mkdir()
    specials.append("folder.wav")
    weird = os.fsencode(str(folder)) + b"/caf\xe9-" + b"bad.wav"
    with open(weird, "wb") as fh:
        fh.write(b"not audio")
    specials.append("caf\ufffd-bad.wav")
    (folder / "oversized.wav").write_bytes(wav(16000, 1, 16, 3_000_000))
    specials.append("oversized.wav")
    return good, bad + specials


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000, help="bad files")
    ap.add_argument("--good", type=int, default=10, help="good files among them")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds before the run counts as hung")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "inputs"
        inputs.mkdir()
        good, bad = make_inputs(inputs, args.files, args.good, args.seed)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSENSE_")}
        env.update(CALLSENSE_DATA_DIR=str(tmp / "data"), CALLSENSE_MAX_INPUT_BYTES="2000000", COLUMNS="200")
        cmd = ["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-m", "callsense", "process", str(inputs)]
        t0 = time.perf_counter()
        try:
            run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
            hung = False
        except subprocess.TimeoutExpired as e:
            run, hung = e, True
        wall = time.perf_counter() - t0
        out = (run.stdout or "") + (run.stderr or "") if not hung else str(run.stdout or "") + str(run.stderr or "")
        rss = int(m.group(1)) if (m := re.search(r"maxrss_kb=(\d+)", out)) else -1
        db = sqlite3.connect(tmp / "data" / "callsense.db")
        done = {r[0] for r in db.execute("select source_name from calls where status = 'done'")}
        letters = [r[0] for r in db.execute("select reason from dead_letters")]
        letter_text = "\n".join(letters)
        bad_letters = sum(1 for name in bad if name in letter_text or name.replace("\ufffd", "?") in letter_text)
        print(f"inputs: {len(good)} good, {len(bad)} bad; one `callsense process` call: {wall:.0f} s, exit "
              f"{'hung' if hung else run.returncode}")
        print(f"peak memory (max RSS): {rss / 1024:.0f} MB (goal <= 1536 MB)")
        print(f"tracebacks in the output: {out.count('Traceback')}")
        print(f"good files stored (done): {len(done & set(good))} of {len(good)}")
        print(f"bad files with a dead letter naming them: {bad_letters} of {len(bad)}; dead letters in all: {len(letters)}")
        missing = [name for name in bad if name not in letter_text and name.replace("\ufffd", "?") not in letter_text]
        stored = {r[0]: r[1] for r in db.execute("select source_name, status from calls")}
        # Truncated or damaged files that still hold decodable audio are stored with what decodes.
        salvaged = [n for n in missing if stored.get(n) == "done"]
        lost = [n for n in missing if stored.get(n) != "done"]
        print(f"damaged but decodable, stored with what decoded: {len(salvaged)}; inputs neither stored nor "
              f"dead-lettered: {len(lost)}")
        for name in lost[:20]:
            print(f"  lost: {name} (call: {stored.get(name, 'none')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
