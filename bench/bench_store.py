"""Store insert rate: sentence rows per second through the pipeline's idempotent upsert.

    python bench/bench_store.py [--rows 20000] [--url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from callsense.ingest.results import result_rows
from callsense.core.events import CallOpened, CallSegmented, ScoredUtterance, Sentence, SentenceSentiment
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore


def utterances(call_id: str, n_utts: int, per_utt: int):
    for u in range(n_utts):
        sentences = [Sentence(index=i, text=f"sentence {u}.{i} about a billing problem", start=u * 5 + i, end=u * 5 + i + 1,
                              sentiment=SentenceSentiment(label=("negative", "neutral", "positive")[(u + i) % 3],
                                                          confidence=0.7, model="bench"))
                     for i in range(per_utt)]
        yield ScoredUtterance(call_id=call_id, channel=u % 2, speaker=("agent", "customer")[u % 2], agent_id="a1",
                              index=u, start=u * 5, end=u * 5 + 4, text="...", asr_model="bench", sentences=sentences)


def run(url: str, rows: int, batch: int) -> float:
    store = ResultStore(make_engine(url))
    per_utt = 4
    n_utts = rows // per_utt
    call_id = f"bench-{uuid.uuid4().hex[:8]}"
    events = [CallOpened(call_id=call_id, source_name="b", mode="recorded", channels=2, speakers=["agent", "customer"],
                         started_at=time.time()),
              *utterances(call_id, n_utts, per_utt),
              CallSegmented(call_id=call_id, utterances_per_channel={0: n_utts // 2, 1: n_utts - n_utts // 2}, duration_s=1)]
    t = time.perf_counter()
    for i in range(0, len(events), batch):
        store.apply(result_rows(events[i:i + batch]))
    took = time.perf_counter() - t
    return (n_utts * (per_utt + 1)) / took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000, help="sentence rows to write")
    ap.add_argument("--batch", type=int, default=64, help="events per transaction (the store stage's batch)")
    ap.add_argument("--url", default=None, help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = args.url or f"sqlite:///{Path(d) / 'bench.db'}"
        rate = run(url, args.rows, args.batch)
        print(f"{url.split(':')[0]}: {rate:,.0f} rows/s (sentences + utterances, {args.batch} utterances per transaction)")


if __name__ == "__main__":
    main()
