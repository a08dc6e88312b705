"""How far the Moonshine engine's estimated times are from Whisper's word timestamps.

Moonshine gives no word times: the engine spreads each pass's words over the speech an
energy detector finds, in proportion to their letters. This compares those times with
faster-whisper's word timestamps (tiny.en, `word_timestamps=True`) on the same audio:
../shared/data/audio and every channel of the sample calls in samples/. Words are paired
where both engines heard the same word (difflib on normalized text).

Figures: absolute error of word starts and ends, and of sentence starts and ends (a
Moonshine segment against the Whisper times of its first and last word), as median /
mean / 90th percentile in seconds and the share within 0.25 s; and the same for a naive
estimate (each pass's words spread evenly over the audio it decoded) to show what the
speech spans and the alignment buy. Whisper's times are a reference, not the truth: it
stretches a sentence's last word over the silence after it (by up to 17 s on the sample
calls) and once put four words 17 s late, so read the medians and the shares, not the means.

    python bench/bench_moonshine_times.py [--show]
"""

from __future__ import annotations

import argparse
import difflib
import statistics

import numpy as np
from bench_asr_engines import Clip, normalize, sample_clips, shared_clips

from callsense.asr.base import RecognizedWord, create_asr_engine
from callsense.asr.engines.moonshine import RATE, DecodedWord, plan_passes, speech_spans, spread_words
from callsense.core.settings import Settings


def paired(ref: list[RecognizedWord], hyp: list[RecognizedWord]) -> dict[int, int]:
    """hyp index -> ref index of the words both engines heard the same."""
    a = [normalize(w.text) for w in ref]
    b = [normalize(w.text) for w in hyp]
    pairs = {}
    for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            pairs[block.b + k] = block.a + k
    return pairs


def even_over_passes(words: list[RecognizedWord], audio: np.ndarray) -> list[RecognizedWord]:
    """The naive estimate: each pass's words spread evenly over the pieces of audio it decoded."""
    out = []
    for piece in plan_passes(audio, speech_spans(audio)):
        ranges = [(a / RATE, b / RATE) for a, b in piece.pieces]
        inside = [DecodedWord(w.text.strip(), np.log(max(w.probability, 1e-9)))
                  for w in words if any(t0 <= w.start < t1 for t0, t1 in ranges)]
        out += spread_words(inside, ranges)
    return out


def errors(ref: list[RecognizedWord], hyp: list[RecognizedWord], segments: list[list[int]]) -> dict[str, list[float]]:
    pairs = paired(ref, hyp)
    out: dict[str, list[float]] = {"word start": [], "word end": [], "sentence start": [], "sentence end": []}
    for i, j in pairs.items():
        out["word start"].append(abs(hyp[i].start - ref[j].start))
        out["word end"].append(abs(hyp[i].end - ref[j].end))
    for seg in segments:
        first, last = seg[0], seg[-1]
        if first in pairs:
            out["sentence start"].append(abs(hyp[first].start - ref[pairs[first]].start))
        if last in pairs:
            out["sentence end"].append(abs(hyp[last].end - ref[pairs[last]].end))
    return out


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    within = float(np.mean(np.array(values) <= 0.25))
    return (f"{statistics.median(values):5.2f} / {statistics.mean(values):5.2f} / {np.percentile(values, 90):5.2f}"
            f"   {within:4.0%} within 0.25 s  (n={len(values)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", action="store_true", help="print each clip's word times side by side")
    args = ap.parse_args()
    settings = Settings()
    whisper = create_asr_engine(settings.model_copy(update={"asr_engine": "whisper"}))
    moonshine = create_asr_engine(settings.model_copy(update={"asr_engine": "moonshine"}))
    clips: list[Clip] = shared_clips() + sample_clips()
    totals: dict[str, dict[str, dict[str, list[float]]]] = {}
    for clip in clips:
        ref = [w for s in whisper.transcribe(clip.audio) for w in s.words]
        segs = list(moonshine.transcribe(clip.audio))
        hyp = [w for s in segs for w in s.words]
        index, seg_idx = 0, []
        for s in segs:
            seg_idx.append(list(range(index, index + len(s.words))))
            index += len(s.words)
        for method, words in (("energy spans (engine)", hyp), ("even over the pass", even_over_passes(hyp, clip.audio))):
            for key, vals in errors(ref, words, [s for s in seg_idx if s]).items():
                for group in (clip.source, "all"):
                    totals.setdefault(method, {}).setdefault(group, {}).setdefault(key, []).extend(vals)
        if args.show:
            pairs = paired(ref, hyp)
            print(f"{clip.name}")
            for i, w in enumerate(hyp):
                r = ref[pairs[i]] if i in pairs else None
                print(f"   {w.text:>16s} {w.start:6.2f} {w.end:6.2f}   whisper " + (f"{r.start:6.2f} {r.end:6.2f}" if r else "-"))
    print(f"absolute time error against Whisper tiny.en word timestamps, seconds: median / mean / p90, share within 0.25 s "
          f"({len(clips)} clips: shared audio and sample-call channels)")
    for method, groups in totals.items():
        print(f"\n{method}")
        for group in ("shared", "samples", "all"):
            for key, vals in groups.get(group, {}).items():
                print(f"  {group:8s} {key:15s} {summary(vals)}")


if __name__ == "__main__":
    main()
