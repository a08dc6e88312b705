"""Embedded ASR engines side by side in one run: Whisper tiny.en (faster-whisper, int8) and
Moonshine base-en (int8 ONNX): WER, real-time factor, CPU-seconds per audio second, and the
latency of one 2 s and one 6 s utterance.

Audio: ../shared/data/audio (real speech, reference texts in its manifest) and the sample
calls in samples/ (each channel on its own, whole; the synthetic calls' texts come from
samples/make_samples.py). Both engines run with settings.cpu_threads threads.

    python bench/bench_asr_engines.py [--engines whisper,whisper-live,moonshine] [--repeat 5] [--show]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from _common import REPO, SHARED_AUDIO

from callsense.asr.base import AsrEngine, create_asr_engine
from callsense.audio.decode import decode_audio
from callsense.core.settings import Settings

RATE = 16000
SAMPLES = REPO / "samples"
CHANNEL_ROLES = ("agent", "customer")  # samples/make_samples.py: agent left, customer right


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # 16 kHz mono float32
    reference: str  # lower case, no punctuation
    source: str  # "shared" or "samples"

    @property
    def duration_s(self) -> float:
        return self.audio.size / RATE


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (hyphens split words)."""
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower().replace("-", " ")).split())


def _channels(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes()).channels


def shared_clips() -> list[Clip]:
    clips = []
    for line in (SHARED_AUDIO / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        channels = _channels(SHARED_AUDIO / item["audio"])
        ch = item["channel"]
        audio = channels[ch] if ch is not None else channels.mean(axis=0)
        name = item["audio"] + (f"#{ch}" if ch is not None else "")
        clips.append(Clip(name, np.ascontiguousarray(audio, dtype=np.float32), normalize(item["text"]), "shared"))
    return clips


def sample_clips() -> list[Clip]:
    """Every channel of every sample call, whole, with the text spoken on it."""
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    make_samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_samples)
    shared = {}
    for line in (SHARED_AUDIO / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["channel"] is not None:
            shared[(item["audio"], item["channel"])] = item["text"]
    clips = []
    for path in sorted(SAMPLES.glob("*.mp3")) + sorted(SAMPLES.glob("*.wav")):
        channels = _channels(path)
        for ch in range(channels.shape[0]):
            if path.stem in make_samples.CALLS:
                ref = " ".join(text for role, text in make_samples.CALLS[path.stem] if role == CHANNEL_ROLES[ch])
            else:
                ref = shared.get((path.name, ch))
            if ref is None:
                continue
            clips.append(Clip(f"{path.name}#{ch}", np.ascontiguousarray(channels[ch], dtype=np.float32), normalize(ref), "samples"))
    return clips


def make_engine(name: str, settings: Settings) -> AsrEngine:
    return create_asr_engine(settings.model_copy(update={"asr_engine": "whisper" if name == "whisper-live" else name}))


def run(engine: AsrEngine, name: str, audio: np.ndarray) -> list:
    if name == "whisper-live":
        return list(engine.transcribe_live(audio))
    return list(engine.transcribe(audio))


def utterance(clips: list[Clip], seconds: float) -> np.ndarray:
    """A clip of real speech cut (or padded) to `seconds`: the shortest clip at least that long."""
    fits = sorted((c for c in clips if c.source == "shared" and c.duration_s >= seconds - 0.2), key=lambda c: c.duration_s)
    audio = fits[0].audio[: int(seconds * RATE)]
    return np.pad(audio, (0, int(seconds * RATE) - audio.size))


def measure(name: str, settings: Settings, clips: list[Clip], repeat: int, show: bool) -> dict:
    t = time.perf_counter()
    engine = make_engine(name, settings)
    load_s = time.perf_counter() - t
    run(engine, name, clips[0].audio)  # warm-up
    hyps: dict[str, str] = {}
    wall = cpu = audio_s = 0.0
    for clip in clips:
        w, c = time.perf_counter(), time.process_time()
        segs = run(engine, name, clip.audio)
        wall += time.perf_counter() - w
        cpu += time.process_time() - c
        audio_s += clip.duration_s
        hyps[clip.name] = normalize(" ".join(s.text for s in segs))
        if show:
            print(f"  {name:12s} {clip.name:32s} {hyps[clip.name]}")
    latency = {}
    for seconds in (2.0, 6.0):
        audio = utterance(clips, seconds)
        run(engine, name, audio)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            run(engine, name, audio)
            times.append(time.perf_counter() - t)
        latency[seconds] = statistics.median(times)

    def wer(source: str) -> float:
        chosen = [c for c in clips if c.source == source]
        return jiwer.wer([c.reference for c in chosen], [hyps[c.name] for c in chosen])

    return {"engine": name, "model": engine.model_id, "load_s": load_s, "wer_shared": wer("shared"),
            "wer_samples": wer("samples"), "rtf": wall / audio_s, "cpu_per_s": cpu / audio_s,
            "lat2": latency[2.0], "lat6": latency[6.0], "audio_s": audio_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="whisper,whisper-live,moonshine")
    ap.add_argument("--repeat", type=int, default=5, help="runs per latency figure (median)")
    ap.add_argument("--show", action="store_true", help="print every transcript")
    args = ap.parse_args()
    settings = Settings()
    clips = shared_clips() + sample_clips()
    n_shared = sum(c.source == "shared" for c in clips)
    words = {s: sum(len(c.reference.split()) for c in clips if c.source == s) for s in ("shared", "samples")}
    print(f"audio: {n_shared} shared clips ({words['shared']} words), {len(clips) - n_shared} sample-call channels "
          f"({words['samples']} words), {sum(c.duration_s for c in clips):.1f} s in all; {settings.cpu_threads} threads; "
          f"latency = median of {args.repeat}")
    rows = [measure(name, settings, clips, args.repeat, args.show) for name in args.engines.split(",")]
    header = f"{'engine':13s} {'WER shared':>10s} {'WER samples':>11s} {'RTF':>6s} {'CPU s/s':>8s} {'2 s utt':>8s} {'6 s utt':>8s} {'load':>6s}  model"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['engine']:13s} {r['wer_shared']:10.1%} {r['wer_samples']:11.1%} {r['rtf']:6.3f} {r['cpu_per_s']:8.3f} "
              f"{r['lat2'] * 1000:6.0f}ms {r['lat6'] * 1000:6.0f}ms {r['load_s']:5.1f}s  {r['model']}")


if __name__ == "__main__":
    main()
