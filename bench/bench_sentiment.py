"""Sentence-sentiment runtime: sentences per second on one core, batched, for one or more model folders in one run.

    python bench/bench_sentiment.py [--models DIR ...] [--batch 32] [--rounds 5] [--threads 1] [--unbucketed]

Scores MELD dev's utterances (1,109 sentences, the length mix of conversation) through the
embedded `onnx` backend exactly as the pipeline does (`OnnxSentimentModel.score`, tokenizer
included), batches of `--batch` in MELD order, `--rounds` passes after one warm-up pass; the
models alternate per round so that load changes hit all of them alike. Prints sentences/s
(median of the rounds and the slowest round), the CPU seconds per 1,000 sentences and the
model folder's size. Issue 14's bar: >= 200 sentences/s on one core, files <= 100 MB.
`--unbucketed` also runs each model with every batch in one ONNX run padded to its longest
sentence (what the runtime did before it cut batches into runs of like-length sentences).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

from _common import REPO

DEFAULT = REPO / "nlp" / "sentiment" / "models" / "minilm-meld-int8"
MELD_DEV = REPO.parent / "shared" / "data" / "sentiment" / "meld" / "dev.csv"


def load(folder: Path, threads: int):
    from callsense.core.settings import Settings
    from callsense.nlp.sentiment.onnx_model import OnnxSentimentModel

    return OnnxSentimentModel(Settings(sentiment_backend="onnx", sentiment_model_dir=str(folder), cpu_threads=threads))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", type=Path, default=[DEFAULT])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unbucketed", action="store_true", help="also time batches run whole (no length buckets)")
    args = ap.parse_args()
    from callsense.nlp.sentiment import onnx_model
    with open(MELD_DEV, encoding="utf-8-sig", newline="") as fh:
        texts = [r["Utterance"] for r in csv.DictReader(fh)]
    models = {str(m): load(m, args.threads) for m in args.models}
    variants = [(key, onnx_model.LENGTH_BUCKET) for key in models]
    if args.unbucketed:
        variants += [(key, 1 << 30) for key in models]
    batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    rates: dict[tuple, list[float]] = {v: [] for v in variants}
    cpu: dict[tuple, list[float]] = {v: [] for v in variants}
    for rnd in range(args.rounds + 1):
        for key, bucket in variants:
            model = models[key]
            onnx_model.LENGTH_BUCKET = bucket
            t, c = time.perf_counter(), time.process_time()
            for b in batches:
                model.score(b)
            wall, used = time.perf_counter() - t, time.process_time() - c
            if rnd:  # round 0 warms up
                rates[(key, bucket)].append(len(texts) / wall)
                cpu[(key, bucket)].append(used / len(texts) * 1000)
    print(f"{len(texts)} MELD dev sentences, batch {args.batch}, {args.threads} thread(s), {args.rounds} rounds; "
          f"load average {open('/proc/loadavg').read().split()[0]}")
    for key, bucket in variants:
        v = (key, bucket)
        size = sum(p.stat().st_size for p in Path(key).iterdir() if p.is_file()) / 1e6
        how = f"runs of {bucket} like-length sentences" if bucket < 1 << 30 else "each batch run whole"
        print(f"{Path(key).name} ({how}): {statistics.median(rates[v]):,.0f} sentences/s median "
              f"(slowest round {min(rates[v]):,.0f}), {statistics.median(cpu[v]):.2f} CPU-s per 1,000 sentences, "
              f"folder {size:.1f} MB")


if __name__ == "__main__":
    main()
