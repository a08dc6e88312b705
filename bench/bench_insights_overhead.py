"""What call characteristics, categories and PII redaction add to the batch pipeline's CPU per
call (issue 15: bar <= 10 %), both sides measured in one run, on the sample calls and
../shared/data/audio.

    python bench/bench_insights_overhead.py [--rounds 2] [PATHS ...]

The pipeline is the one `callsense process` runs (segment, transcribe, sentiment, store through
the in-process transport, the default engine: Moonshine), with the insights

- on: the defaults (sentence loudness, the shipped category rules, PII redaction `mask`);
- off: CALLSENSE_SENTENCE_LOUDNESS=false, CALLSENSE_CATEGORIES=false, CALLSENSE_PII_REDACTION=off.

Both pipelines share the loaded models and each has its own store. After an untimed warm-up
call through each, every round sends every file through both, call by call, alternating which
goes first (on/off, off/on, ...), so a change in the machine's load hits both sides alike. A
call's cost is the process's CPU time (user + system, every thread, plus child processes)
while it goes through; figures are CPU-seconds per call on/off and the overhead in %, over
all rounds and per round.

Second estimate, per part, less sensitive to load: the three functions timed directly (this
thread's CPU, best of 3) over the same calls as the `off` pipeline stored them (sentence texts as the ASR wrote them,
times, channels): PII redaction of each utterance's words, each sentence's loudness from its
audio, and the final category evaluation of every call (read from the store, rules, write), as
% of the off side's CPU per call. The other characteristics (talk speed, silences,
interruptions) are computed when read, by the dashboard and the category rules (so the latter
are inside the categories' cost).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from _common import REPO, SHARED_AUDIO

from callsense.asr.base import RecognizedWord
from callsense.audio.decode import collapse_dual_mono, decode_audio
from callsense.core.events import Sentence as SentenceEvent, UtteranceSpan
from callsense.core.settings import Settings
from callsense.ingest.categories import CategoryEvaluator, rules_from_settings
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.sources import expand_inputs, recorded_call
from callsense.ingest.stage import STAGE_ORDER
from callsense.ingest.stages.transcribe import with_loudness
from callsense.ingest.transports.inprocess import InProcessTransport
from callsense.nlp.pii import PiiRedactor, redact_words

AUDIO = (".wav", ".mp3", ".flac", ".ogg", ".m4a")
OFF = {"sentence_loudness": False, "categories": False, "pii_redaction": "off"}
SHARED = ("asr_engine", "sentiment_model", "vad")  # loaded once, used by every pass


def cpu_s() -> float:
    """CPU seconds of this process (all threads) and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


class Side:
    """One pipeline (insights on or off) with its own fresh store."""

    def __init__(self, base: Settings, models: PipelineResources, on: bool, root: Path, name: str):
        settings = base.with_values(data_dir=root / f"{name}-{'on' if on else 'off'}", **({} if on else OFF))
        self.res = PipelineResources(settings)
        for attr in SHARED:  # cached_property: the models loaded once
            self.res.__dict__[attr] = getattr(models, attr)
        self.on = on
        self.transport = InProcessTransport([build_stage(s, self.res) for s in STAGE_ORDER])
        self.call_ids: list[str] = []

    def call(self, f: Path) -> tuple[float, float]:
        """(CPU s, wall s) of one file through the pipeline, stored."""
        c, w = cpu_s(), time.perf_counter()
        ev = recorded_call(f, self.res.blobs, settings=self.res.settings)
        self.transport.publish([ev])
        self.transport.drain()
        c, w = cpu_s() - c, time.perf_counter() - w
        self.call_ids.append(ev.call_id)
        return c, w


def per_part(off: Side, files: list[Path], repeat: int = 3) -> dict[str, float]:
    """CPU s per pass over all the files of each part, timed directly (best of `repeat`)."""
    from sqlmodel import Session, select

    from callsense.store.schema import Sentence

    with Session(off.res.store.engine) as s:
        rows = list(s.exec(select(Sentence).where(Sentence.call_id.in_(off.call_ids))))
    # Redaction: each utterance's words as the ASR gave them (the off pass stored them in clear).
    utterances: dict[tuple, list[RecognizedWord]] = {}
    for r in sorted(rows, key=lambda r: (r.call_id, r.channel, r.utterance_idx, r.idx)):
        words = utterances.setdefault((r.call_id, r.channel, r.utterance_idx), [])
        for k, tok in enumerate(r.text.split()):
            words.append(RecognizedWord(" " + tok, r.start + 0.3 * k, r.start + 0.3 * k + 0.25, 0.9))
    redactor = PiiRedactor("mask")
    # Loudness: each sentence's level from its channel's audio (what the transcribe stage does per batch).
    audio = {cid: collapse_dual_mono(decode_audio(f.read_bytes()).channels) for cid, f in zip(off.call_ids, files)}
    spans = [(SentenceEvent(index=r.idx, text=r.text, start=r.start, end=r.end), audio[r.call_id][min(r.channel, len(audio[r.call_id]) - 1)])
             for r in rows]
    whole = UtteranceSpan(index=0, start=0.0, end=1e9, offset=0.0)
    # Categories: the final evaluation of every call (read, rules, write), on the off pass's store.
    evaluator = CategoryEvaluator(rules_from_settings(Settings()), off.res.store)

    def best(fn) -> float:
        # This thread's CPU only: the ASR engine's idle pool threads would otherwise count too.
        times = []
        for _ in range(repeat):
            c = time.thread_time()
            fn()
            times.append(time.thread_time() - c)
        return min(times)

    return {
        "PII redaction (mask)": best(lambda: [redact_words(ws, redactor) for ws in utterances.values()]),
        "sentence loudness": best(lambda: [with_loudness(s, a, whole) for s, a in spans]),
        "categories (default rules)": best(lambda: evaluator.after_batch(off.call_ids)),
        "_sentences": len(rows),
        "_utterances": len(utterances),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, default=[REPO / "samples", SHARED_AUDIO])
    ap.add_argument("--rounds", type=int, default=2, help="Times each file goes through each side.")
    args = ap.parse_args()
    files = [f for f in expand_inputs(args.paths) if f.suffix.lower() in AUDIO]
    audio_s = sum(decode_audio(f.read_bytes()).duration_s for f in files)
    base = Settings()
    assert base.pipeline.sentence_loudness and base.pipeline.categories and base.pipeline.pii_redaction == "mask", \
        "run with the default insight settings (unset CALLSENSE_SENTENCE_LOUDNESS, _CATEGORIES, _PII_REDACTION)"
    with tempfile.TemporaryDirectory(prefix="bench-insights-") as d:
        root = Path(d)
        models = PipelineResources(base.with_values(data_dir=root / "models"))
        print(f"{len(files)} files, {audio_s:.1f} s of audio; engine {models.asr_engine.model_id}, "
              f"{base.cpu_threads} CPU threads; {os.cpu_count()} CPUs; load average {load()} at the start")
        warm = min(files, key=lambda f: f.stat().st_size)
        for on in (True, False):
            Side(base, models, on, root, "warm-up").call(warm)
        totals = {True: [0.0, 0.0], False: [0.0, 0.0]}  # CPU s, wall s
        per_round: list[dict[bool, float]] = []
        off_side = None
        k = 0
        for r in range(args.rounds):
            sides = {on: Side(base, models, on, root, f"round-{r}") for on in (True, False)}
            cpu = {True: 0.0, False: 0.0}
            for f in files:
                for on in ((True, False) if k % 2 == 0 else (False, True)):
                    c, w = sides[on].call(f)
                    cpu[on] += c
                    totals[on][0] += c
                    totals[on][1] += w
                k += 1
            per_round.append(cpu)
            off_side = sides[False]
            print(f"round {r + 1}: on {cpu[True]:7.2f} CPU s, off {cpu[False]:7.2f} CPU s -> "
                  f"{100 * (cpu[True] / cpu[False] - 1):+.1f} %; load average {load()}")
        n = len(files) * args.rounds
        on_c, off_c = totals[True][0] / n, totals[False][0] / n
        print(f"\nCPU per call over {args.rounds} rounds x {len(files)} calls: on {on_c:.3f} s, off {off_c:.3f} s "
              f"(per audio second: {on_c * len(files) / audio_s * 1000:.1f} / {off_c * len(files) / audio_s * 1000:.1f} ms; "
              f"wall per call {totals[True][1] / n:.2f} / {totals[False][1] / n:.2f} s)")
        print(f"insights overhead: {100 * (on_c / off_c - 1):+.1f} % (bar: <= +10 %); per round: "
              + ", ".join(f"{100 * (c[True] / c[False] - 1):+.1f} %" for c in per_round))

        parts = per_part(off_side, files)
        n_sent, n_utt = parts.pop("_sentences"), parts.pop("_utterances")
        print(f"\nper part, timed directly over the same {len(files)} calls ({n_utt} utterances, {n_sent} sentences), "
              f"% of the off side's CPU per call:")
        for name, c in parts.items():
            print(f"  {name:28s} {c * 1000 / len(files):8.2f} ms per call  {100 * c / len(files) / off_c:6.2f} %")
        total = sum(parts.values())
        print(f"  {'sum':28s} {total * 1000 / len(files):8.2f} ms per call  {100 * total / len(files) / off_c:6.2f} %")
        print(f"load average {load()} at the end")


if __name__ == "__main__":
    main()
