"""Decode cost per ~100 KB MP3 (TR-4910's unit) to 16 kHz mono, one core.

    python bench/bench_decode.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import SHARED_AUDIO, median_ms  # noqa: E402

from callsense.audio.decode import decode_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as d:
        mp3 = Path(d) / "jfk.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(SHARED_AUDIO / "jfk.flac"), "-ac", "1",
                        "-codec:a", "libmp3lame", "-b:a", "72k", str(mp3)], check=True)
        data = mp3.read_bytes()
        kb = len(data) / 1000
        print(f"input: 11.0 s speech as MP3, {kb:.0f} KB; median of {args.repeat}, pinned to one core")
        results = {
            "PyAV in-process (default)": median_ms(lambda: decode_audio(data, "pyav"), args.repeat),
            "ffmpeg CLI via ffmpeg-python": median_ms(lambda: decode_audio(data, "ffmpeg"), args.repeat),
        }
        try:
            from faster_whisper.audio import decode_audio as fw_decode

            results["faster_whisper.decode_audio"] = median_ms(lambda: fw_decode(str(mp3)), args.repeat)
        except ImportError:
            pass
        for name, ms in results.items():
            print(f"{name:32s} {ms:7.1f} ms/file  {ms * 100 / kb:7.1f} ms per 100 KB  {11000 / ms:7.0f}x real time")


if __name__ == "__main__":
    main()
