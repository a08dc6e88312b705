"""Dashboard query speed on a large store: an agent's 90-day history over 1M sentences
(goal: <= 200 ms), plus the other aggregate reads the Agents and Review pages make.

Fills a scratch store with synthetic calls spread over a year (default 1,000,000 sentences
across 50 agents), then times each read through the dashboard's data layer (median of N).

    python bench/bench_dashboard.py [--sentences 1000000] [--agents 50] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_ms  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from callsense.dashboard.data import DashboardData, User  # noqa: E402
from callsense.store.db import make_engine  # noqa: E402
from callsense.store.schema import Call, Sentence  # noqa: E402

LABELS = ("negative", "neutral", "positive")
PER_CALL = 12  # sentences per call


def fill(engine, n_sentences: int, n_agents: int, now: float, seed: int = 1) -> int:
    """Calls spread uniformly over 365 days, PER_CALL sentences each, alternating speakers."""
    rng = random.Random(seed)
    n_calls = n_sentences // PER_CALL
    calls, sentences = [], []
    written = 0
    with engine.begin() as conn:
        for c in range(n_calls):
            agent = f"ag-{rng.randrange(n_agents):03d}"
            started = now - rng.uniform(0, 365 * 86400)
            call_id = f"bench-{c:07d}"
            calls.append(dict(id=call_id, source_name=f"{call_id}.mp3", mode="recorded", status="done", agent_id=agent,
                              channels=2, speakers="agent,customer", started_at=started, duration_s=PER_CALL * 4.0,
                              utterances_expected=PER_CALL, finished_at=started + 60))
            for i in range(PER_CALL):
                ch = i % 2
                sentences.append(dict(call_id=call_id, channel=ch, utterance_idx=i // 2, idx=0,
                                      speaker=("agent", "customer")[ch], agent_id=agent, call_started_at=started,
                                      start=i * 4.0, end=i * 4.0 + 3.5, text=f"sentence {i} of {call_id}",
                                      sentiment=rng.choice(LABELS), confidence=round(rng.random(), 4),
                                      sentiment_model="bench", asr_model="bench", stored_at=started + 60))
            if len(sentences) >= 50_000:
                conn.execute(insert(Call), calls)
                conn.execute(insert(Sentence), sentences)
                written += len(sentences)
                calls, sentences = [], []
                print(f"\r  {written:,} sentences", end="", file=sys.stderr, flush=True)
        if sentences:
            conn.execute(insert(Call), calls)
            conn.execute(insert(Sentence), sentences)
            written += len(sentences)
    print(file=sys.stderr)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return written


def run(url: str, n_sentences: int, n_agents: int, repeat: int) -> dict[str, float]:
    engine = make_engine(url)
    now = time.time()
    t = time.perf_counter()
    written = fill(engine, n_sentences, n_agents, now)
    print(f"filled {written:,} sentences in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    manager = DashboardData(engine, User("bench-manager", frozenset({"manager", "reviewer"})), clock=lambda: now)
    agent_id = "ag-000"
    agent = DashboardData(engine, User(agent_id, frozenset({"agent"}), agent_id=agent_id), clock=lambda: now)
    rows = agent.agent_history(agent_id, 90)
    n_agent = sum(sum(r.customer.values()) + sum(r.agent.values()) for r in rows)
    print(f"agent {agent_id}: {n_agent:,} sentences in 90 days, {len(rows)} days with calls", file=sys.stderr)
    return {
        "agent history, 90 days": median_ms(lambda: agent.agent_history(agent_id, 90), repeat),
        "agent history, 365 days": median_ms(lambda: agent.agent_history(agent_id, 365), repeat),
        "agent's calls, 90 days": median_ms(lambda: agent.agent_calls(agent_id, 90), repeat),
        "team average, 90 days": median_ms(lambda: agent.team_average(90), repeat),
        "team comparison, 90 days": median_ms(lambda: manager.team_comparison(90), repeat),
        "review queue (lowest confidence)": median_ms(lambda: manager.review_queue(limit=1), repeat),
        "review queue (sampled)": median_ms(lambda: manager.review_queue(order="sample", limit=1), repeat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=1_000_000)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=20, help="timed runs per query (median)")
    ap.add_argument("--url", default=None, help="database URL (default: a fresh SQLite file); it must be empty")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = args.url or f"sqlite:///{Path(d) / 'bench.db'}"
        results = run(url, args.sentences, args.agents, args.repeat)
    print(f"{url.split(':')[0]}, {args.sentences:,} sentences, {args.agents} agents (median of {args.repeat}):")
    for name, ms in results.items():
        goal = "  (goal <= 200 ms)" if name == "agent history, 90 days" else ""
        print(f"  {name:<34} {ms:8.1f} ms{goal}")


if __name__ == "__main__":
    main()
