"""The live endpointer's silence (CALLSENSE_LIVE_MIN_SILENCE_MS) against accuracy.

A shorter silence ends live utterances sooner (every millisecond of it is latency before
the utterance can be recognized) but cuts speech into shorter pieces at in-sentence pauses,
and an engine that hears each piece alone (Moonshine, for live calls) then mishears more.
For each silence: the sample calls (per channel, reference = the scripted turns) and
../shared/data/audio (manifest texts) are streamed through the segment stage as live calls
(not paced; no interims), each live utterance is recognized alone by the transcribe stage,
and the WER of the whole is printed with the number of utterances.

    python bench/bench_endpointer.py [--silence 150 200 300 500] [--engine moonshine]
    python bench/bench_endpointer.py --silence 300 --sentence-pause 0 120 150 200   # CALLSENSE_LIVE_SENTENCE_PAUSE_MS

With a sentence pause the segment stage recognizes the utterance at each pause it checks;
when the utterance then closes at that pause, those words are its transcript (the transcribe
stage does not recognize it again), so the CPU figure to compare is the sum of both stages.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED_AUDIO  # noqa: E402

import jiwer  # noqa: E402

from callsense.asr.base import create_asr_engine  # noqa: E402
from callsense.core.events import UtteranceBatch  # noqa: E402
from callsense.core.settings import Settings  # noqa: E402
from callsense.ingest.sources import live_chunks  # noqa: E402
from callsense.ingest.stages.segment import CallSegmenter  # noqa: E402
from callsense.ingest.stages.transcribe import UtteranceTranscriber  # noqa: E402
from callsense.store.blobs import BlobStore  # noqa: E402


def references() -> list[tuple[Path, dict[int, str]]]:
    spec = importlib.util.spec_from_file_location("make_samples", REPO / "samples" / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = []
    for name, turns in mod.CALLS.items():
        out.append((REPO / "samples" / f"{name}.mp3",
                    {c: " ".join(t for who, t in turns if (who == "customer") == c) for c in (0, 1)}))
    for line in (SHARED_AUDIO / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item.get("channel") is None and not item["audio"].startswith("stereo"):
            out.append((SHARED_AUDIO / item["audio"], {0: item["text"]}))
    return out


def norm(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).replace("-", " ").split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--silence", type=int, nargs="+", default=[150, 200, 300, 500])
    ap.add_argument("--sentence-pause", type=int, nargs="+", default=[0],
                    help="live_sentence_pause_ms values (0 = off): close at a shorter pause where a sentence ends")
    ap.add_argument("--engine", default=None, help="ASR engine (default: the settings' default)")
    args = ap.parse_args()
    base = Settings(live_interim_ms=0, **({"asr_engine": args.engine} if args.engine else {}))
    engine = create_asr_engine(base)
    refs = references()
    print(f"engine {engine.model_id}; {len(refs)} recordings; load average %.1f / %.1f / %.1f" % os.getloadavg())
    for silence in args.silence:
      for pause in args.sentence_pause:
        settings = base.model_copy(update={"live_min_silence_ms": silence})
        settings.pipeline.live_sentence_pause_ms = pause
        with tempfile.TemporaryDirectory() as d:
            blobs = BlobStore(Path(d), 1 << 30)
            seg = CallSegmenter(settings, blobs, interim_engine=lambda: engine)
            tr = UtteranceTranscriber(engine, blobs)
            hyps, refs_text, n_utts, asr_s, heard = [], [], 0, 0.0, 0
            t_seg = time.perf_counter()
            for path, ref in refs:
                batches = [e for ch in live_chunks(path, call_id=path.stem, realtime=False)
                           for e in seg.handle_batch([ch]) if isinstance(e, UtteranceBatch)]
                n_utts += len(batches)
                heard += sum(b.recognized is not None for b in batches)
                t0 = time.perf_counter()
                out = [u for b in batches for u in tr.handle_batch([b])]
                asr_s += time.perf_counter() - t0
                for c, text in ref.items():
                    hyps.append(norm(" ".join(u.text for u in sorted(out, key=lambda u: u.start) if u.channel == c)))
                    refs_text.append(norm(text))
            seg_s = time.perf_counter() - t_seg - asr_s
            wer = jiwer.wer(refs_text, hyps)
            print(f"live_min_silence_ms {silence:4d}, live_sentence_pause_ms {pause:4d}: {n_utts:3d} utterances "
                  f"({seg.sentence_closes} closed at a sentence pause, {heard} recognized at a pause), WER {100 * wer:5.1f} %, "
                  f"transcribe stage {asr_s:5.1f} s, segment stage {seg_s:5.1f} s (pause checks included), "
                  f"sum {asr_s + seg_s:5.1f} s", flush=True)


if __name__ == "__main__":
    main()
