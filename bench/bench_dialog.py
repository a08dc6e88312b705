"""Text-turn latency of the retail assistant: NLU + dialog engine + SQL fulfillment + the
session/archive writes, per turn, as `Assistant.reply` does it (goal: p95 <= 20 ms).

Runs realistic conversations (weather with and without a place, prices, stores, stock,
not-understood input) over many sessions against a scratch SQLite store on disk, with the
rule-based `keywords` NLU and, when it is installed with a trained model, the `embedded`
joint intent/slot model. Prints p50 / p95 / p99 / mean per backend and the NLU's share.

    python bench/bench_dialog.py [--turns 2000] [--sessions 50] [--url sqlite:///...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile  # noqa: E402

CONVERSATIONS = [
    ["what's the weather?", "Los Angeles", "will it rain next week?", "and the temperature tomorrow?"],
    ["will it rain next week in Los Angeles?", "is it going to snow in Chicago this weekend?"],
    ["how much is laptop memory", "Seattle", "do you have it in stock?"],
    ["nearest Thai food in Los Angeles", "the highest-rated sushi restaurant", "jeans with the lowest price"],
    ["where can I get the best pasta in San Francisco", "how much are airpods"],
    ["tell me a joke", "what's the humidity in Miami", "is it sunny in Austin tomorrow"],
    ["how much does it cost?", "headphones", "New York"],
]


def run(backend_name: str, nlu, url: str, turns: int, sessions: int) -> dict:
    from callsense.core.settings import Settings
    from callsense.dialog.assistant import Assistant
    from callsense.store.db import make_engine

    db = make_engine(url)
    assistant = Assistant(Settings(nlu_backend=backend_name), nlu=nlu, db=db, seed=1, today=lambda: date(2025, 6, 2))
    # Warm-up: catalog seeding, compiled statement caches, model warm-up.
    for i, conv in enumerate(CONVERSATIONS):
        for text in conv:
            assistant.reply(f"warm-{backend_name}-{i}", text)
    flat = [(c, t) for c, conv in enumerate(CONVERSATIONS) for t in conv]
    total_ms: list[float] = []
    nlu_ms: list[float] = []
    for n in range(turns):
        c, text = flat[n % len(flat)]
        session = f"bench-{backend_name}-{(n // len(flat)) % sessions}-{c}"
        t0 = time.perf_counter()
        nlu.parse(text)
        t1 = time.perf_counter()
        assistant.reply(session, text)
        t2 = time.perf_counter()
        nlu_ms.append((t1 - t0) * 1000)
        total_ms.append((t2 - t1) * 1000)
    assistant.close()
    db.dispose()
    return {
        "backend": backend_name, "turns": turns, "sessions": sessions,
        "p50_ms": round(percentile(total_ms, 0.50), 2), "p95_ms": round(percentile(total_ms, 0.95), 2),
        "p99_ms": round(percentile(total_ms, 0.99), 2), "mean_ms": round(statistics.fmean(total_ms), 2),
        "nlu_p50_ms": round(percentile(nlu_ms, 0.50), 3), "nlu_p95_ms": round(percentile(nlu_ms, 0.95), 3),
        "goal_p95_ms": 20.0, "meets_goal": percentile(total_ms, 0.95) <= 20.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--url", default=None, help="Store URL (default: a scratch SQLite file).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    from callsense.core.settings import Settings
    from callsense.dialog.nlu.base import create_nlu
    from callsense.dialog.nlu.keywords import KeywordNlu

    tmp = tempfile.TemporaryDirectory(prefix="bench-dialog-")
    url = args.url or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    backends = [("keywords", KeywordNlu())]
    try:
        backends.append(("embedded", create_nlu(Settings(nlu_backend="embedded"))))
    except Exception as e:  # noqa: BLE001 - report and measure what is there
        print(f"embedded NLU backend not measured: {e.__class__.__name__}: {str(e).splitlines()[0][:150]}")
    results = []
    for name, nlu in backends:
        r = run(name, nlu, url, args.turns, args.sessions)
        results.append(r)
        print(f"{name:9s} {r['turns']} turns over {r['sessions']} sessions: p50 {r['p50_ms']:.2f} ms, "
              f"p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms "
              f"(NLU alone p50 {r['nlu_p50_ms']:.3f} ms, p95 {r['nlu_p95_ms']:.3f} ms) "
              f"-> goal p95 <= 20 ms {'met' if r['meets_goal'] else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
