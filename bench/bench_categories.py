"""`callsense categories apply` over many stored calls: N synthetic calls (the demo's
scripts, with extra phrases and long holds mixed in) inserted directly into a fresh SQLite
store, then every call re-evaluated with the default rules. Target: 100,000 calls in <= 60 s.

    python bench/bench_categories.py --calls 100000 [--db /tmp/bench.db] [--keep]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callsense.dashboard.demo import SCRIPTS, script_turns  # noqa: E402
from callsense.ingest.categories import apply_to_stored  # noqa: E402
from callsense.nlp.categories import load_rules  # noqa: E402
from callsense.store.db import make_engine  # noqa: E402
from callsense.store.repository import ResultStore  # noqa: E402

EXTRA = [("customer", "I want to speak to a manager right now.", "negative"),
         ("customer", "If this is not fixed I will cancel my contract.", "negative"),
         ("customer", "Please don't cancel anything yet.", "neutral"),
         ("agent", "I can refund the difference to your card.", "positive")]


def fill(db: Path, n: int, seed: int = 11) -> int:
    make_engine(f"sqlite:///{db}").dispose()  # schema through the migrations
    rng = random.Random(seed)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = time.time()
    calls, sentences, total = [], [], 0
    scripts = list(SCRIPTS)
    for i in range(n):
        call_id = f"bench-{i:07d}"
        turns = script_turns(rng.choice(scripts), rng, mood=rng.uniform(-1, 1))
        if rng.random() < 0.2:
            extra = rng.choice(EXTRA)
            t = turns[-1].end + (rng.choice([1.0, 75.0]))
            turns.append(type(turns[0])(extra[0], extra[1], extra[2], t, t + 3.0))
        started = now - rng.uniform(0, 180 * 86400)
        agent = f"ag-{rng.randrange(40)}"
        calls.append((call_id, f"{call_id}.mp3", "recorded", "done", agent, 2, "agent,customer", started,
                      turns[-1].end + 1.0, len(turns), started + 600))
        idx = {"agent": 0, "customer": 0}
        for t in turns:
            ch = 0 if t.speaker == "agent" else 1
            sentences.append((call_id, ch, idx[t.speaker], 0, t.speaker, agent, started, t.start, t.end, t.text,
                              t.sentiment, 0.9, "demo", "demo-asr", None, now, rng.uniform(-30, -12)))
            idx[t.speaker] += 1
        if len(sentences) > 200_000 or i == n - 1:
            conn.executemany("INSERT INTO calls (id, source_name, mode, status, agent_id, channels, speakers, started_at, "
                             "duration_s, utterances_expected, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", calls)
            conn.executemany('INSERT INTO sentences (call_id, channel, utterance_idx, idx, speaker, agent_id, '
                             'call_started_at, start, "end", text, sentiment, confidence, sentiment_model, asr_model, '
                             'ended_at, stored_at, loudness_dbfs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)', sentences)
            conn.commit()
            total += len(sentences)
            calls, sentences = [], []
    conn.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--keep", action="store_true", help="Reuse --db when it exists (skip filling).")
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="callsense-bench-")) / "categories.db"
    if not (args.keep and db.exists()):
        t = time.perf_counter()
        n = fill(db, args.calls)
        print(f"filled {args.calls} calls, {n} sentences in {time.perf_counter() - t:.1f} s ({db})")
    store = ResultStore(make_engine(f"sqlite:///{db}"))
    rules = load_rules()
    for run in ("first apply (all new)", "second apply (unchanged)"):
        r = apply_to_stored(rules, store, batch=args.batch)
        print(f"{run}: {r.calls} calls, {r.sentences} sentences, {r.matched_calls} with a category in {r.total_s:.1f} s "
              f"(read {r.read_s:.1f} s, rules {r.evaluate_s:.1f} s, write {r.write_s:.1f} s) "
              f"= {r.calls / r.total_s:,.0f} calls/s; per category: {r.matches}")


if __name__ == "__main__":
    main()
