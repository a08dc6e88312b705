"""End-to-end real-time factor of the embedded pipeline vs the raw ASR engine alone, in
the same run, on the sample calls and ../shared/data/audio.

    python bench/bench_pipeline.py

"ASR alone" transcribes each channel of each file in one engine call (what a user of
faster-whisper would do); "pipeline" is decode + VAD + packing + ASR + sentence split +
sentiment + SQLite, through the in-process transport.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import REPO, SHARED_AUDIO

from callsense.core.settings import Settings
from callsense.audio.decode import collapse_dual_mono, decode_audio
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.sources import expand_inputs, recorded_call
from callsense.ingest.stage import STAGE_ORDER
from callsense.ingest.transports.inprocess import InProcessTransport


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[REPO / "samples", SHARED_AUDIO])
    ap.add_argument("--engine", nargs="+", default=[None], help="ASR engine(s), one run each (default: the settings' default)")
    args = ap.parse_args()
    # Recordings only (expand_inputs also takes chats and emails, e.g. a manifest.jsonl).
    files = [f for f in expand_inputs(args.paths) if f.suffix.lower() in (".wav", ".mp3", ".flac", ".ogg", ".m4a")]
    for name in args.engine:
        run(files, name)


def run(files, engine_name) -> None:
    import os

    with tempfile.TemporaryDirectory() as d:
        res = PipelineResources(Settings(data_dir=Path(d), **({"asr_engine": engine_name} if engine_name else {})))
        transport = InProcessTransport([build_stage(n, res) for n in STAGE_ORDER])
        engine = res.asr_engine
        audio_s = asr_s = pipe_s = 0.0
        print(f"\n== {engine.model_id}; load average %.1f / %.1f / %.1f at the start" % os.getloadavg())
        print(f"{'file':32s} {'audio s':>8s} {'ASR alone':>10s} {'pipeline':>9s}")
        for f in files:
            decoded = decode_audio(f.read_bytes())
            channels = collapse_dual_mono(decoded.channels)
            t = time.perf_counter()
            for ch in channels:
                list(engine.transcribe(ch))
            a = time.perf_counter() - t
            t = time.perf_counter()
            transport.publish([recorded_call(f, res.blobs)])
            transport.drain()
            p = time.perf_counter() - t
            audio_s += decoded.duration_s
            asr_s += a
            pipe_s += p
            print(f"{f.name[:32]:32s} {decoded.duration_s:8.1f} {a:9.2f}s {p:8.2f}s")
        print(f"\n{len(files)} files, {audio_s:.1f} s of audio; load average %.1f / %.1f / %.1f at the end" % os.getloadavg())
        print(f"ASR engine alone: {audio_s / asr_s:5.1f}x faster than real time")
        print(f"whole pipeline:   {audio_s / pipe_s:5.1f}x faster than real time")
        print(f"pipeline overhead vs ASR alone: {(pipe_s - asr_s) / asr_s * 100:+.1f} %")


if __name__ == "__main__":
    main()
