"""Helpers shared by the Kafka pipeline tests (a plain module: `conftest` is ambiguous
when several test folders have one)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.sources import recorded_call
from callsense.ingest.stage import STAGE_ORDER
from callsense.ingest.transports.inprocess import InProcessTransport
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5, on_timeout=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{on_timeout()}", pytrace=False)


def result_store(pe) -> ResultStore:
    return ResultStore(make_engine(pe.settings.resolved_database_url))


def transcript(store: ResultStore, call_id: str) -> list[tuple]:
    return sorted((s.channel, s.utterance_idx, s.idx, s.text, s.sentiment) for s in store.sentences(call_id))


def embedded_reference(tmp_path: Path, files: list[Path]) -> dict[str, list[tuple]]:
    settings = Settings(data_dir=tmp_path / "embedded")
    res = PipelineResources(settings)
    transport = InProcessTransport([build_stage(n, res) for n in STAGE_ORDER])
    ids = {}
    for f in files:
        ev = recorded_call(f, res.blobs)
        transport.publish([ev])
        transport.drain()
        ids[ev.call_id] = transcript(res.store, ev.call_id)
    return ids


def all_done(store: ResultStore, ids) -> bool:
    calls = [store.get_call(i) for i in ids]
    return all(c is not None and c.status == "done" for c in calls)


def assert_same_results(store: ResultStore, call_id: str, expected: list[tuple]) -> None:
    """Same sentence keys as the reference run, and (nearly) the same words and labels:
    Whisper's temperature fallback samples without a seed, so a rare hallucinated tail on
    a short clip may differ between two runs of the same audio."""
    import jiwer

    got = transcript(store, call_id)
    assert abs(len(got) - len(expected)) <= 1, (got, expected)
    ref_text = " ".join(r[3] for r in expected)
    got_text = " ".join(r[3] for r in got)
    assert jiwer.wer(ref_text, got_text) <= 0.05, (ref_text, got_text)
    same = sum(a[4] == b[4] for a, b in zip(got, expected))
    assert same >= 0.9 * len(expected), (got, expected)
