"""Categories in the store stage (recorded: when done; live: as sentences arrive), the
worker refusing an invalid rule file, `callsense categories`, and sentence loudness."""

from __future__ import annotations

import random

import numpy as np
import pytest
from typer.testing import CliRunner

from callsense.core.events import Sentence, UtteranceSpan
from callsense.core.settings import Settings
from callsense.dashboard import demo
from callsense.ingest.pipeline import PipelineResources, build_stage
from callsense.ingest.stages.store import ResultWriter
from callsense.ingest.stages.transcribe import with_loudness
from callsense.nlp.categories import CategoryRulesError, load_rules, parse_rules
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore

RULES = """\
categories:
  - name: refund
    match: {phrase: refund}
  - name: unhappy-ending
    match: {sentiment: negative, last_seconds: 30, speaker: customer}
"""


@pytest.fixture
def store(tmp_path):
    return ResultStore(make_engine(f"sqlite:///{tmp_path / 'cs.db'}"))


def billing(call_id: str, mode: str, mood: float = -1.0):
    turns = demo.script_turns("billing", random.Random(3), mood=mood)
    return demo.call_events(call_id, turns, agent_id="ag-1", started_at=1000.0, mode=mode)


def test_a_live_alert_is_stored_with_the_sentence_that_makes_the_rule_match(store):
    writer = ResultWriter(store, parse_rules(RULES))
    opened, *utts, segmented = billing("live-1", "live")
    writer.handle_batch([opened])
    refund_at = next(i for i, u in enumerate(utts) if "refund" in u.text.lower())
    for i, u in enumerate(utts):
        writer.handle_batch([u])
        cats = [c.category for c in store.categories("live-1")]
        assert cats == (["refund"] if i >= refund_at else []), i  # the end-of-call rule waits
    first = store.categories("live-1")[0]
    assert first.start == utts[refund_at].start and first.first_sentence_idx == refund_at
    writer.handle_batch([segmented])  # done: final evaluation
    assert store.get_call("live-1").status == "done"
    assert {c.category for c in store.categories("live-1")} >= {"refund"}
    final = {c.category: c for c in store.categories("live-1")}
    assert final["refund"].matched_at == first.matched_at  # the alert keeps its time
    assert final["unhappy-ending"].matched_at > first.matched_at  # decided at the end of the call


def test_a_recorded_call_is_categorised_when_done(store):
    writer = ResultWriter(store, parse_rules(RULES))
    events = billing("rec-1", "recorded")
    writer.handle_batch(events[:-1])
    assert store.categories("rec-1") == []  # not done yet
    writer.handle_batch(events[-1:])
    assert {c.category for c in store.categories("rec-1")} == {"refund", "unhappy-ending"}


def test_an_invalid_rule_file_stops_the_store_stage_at_start_up(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("categories:\n  - name: x\n    match: {phrase: refund, speker: customer}\n")
    settings = Settings(data_dir=tmp_path, categories_file=bad)
    with pytest.raises(CategoryRulesError, match=rf"{bad}:3: .*unknown match key 'speker' \(did you mean 'speaker'\?\)"):
        build_stage("store", PipelineResources(settings))
    ok = Settings(data_dir=tmp_path)
    assert build_stage("store", PipelineResources(ok)).categories.rules.names == load_rules().names


def test_the_worker_command_refuses_an_invalid_rule_file(tmp_path, monkeypatch):
    from callsense.cli import app

    bad = tmp_path / "rules.yaml"
    bad.write_text("categories:\n  - name: x\n    match: {sentiment: angry}\n")
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLSENSE_CATEGORIES_FILE", str(bad))
    result = CliRunner().invoke(app, ["worker", "--stages", "store"])
    assert result.exit_code == 1
    assert f"{bad}:3:" in result.output.replace("\n", "") and "angry" in result.output


def test_categories_cli_validate_list_apply(tmp_path, monkeypatch):
    from callsense.cli import app

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CALLSENSE_CATEGORIES_FILE", raising=False)
    store = PipelineResources(Settings()).store
    demo.seed_history(store, days=5, calls_per_day=1, rules=None)
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories:\n  - nam: x\n    match: {phrase: y}\n")
    r = runner.invoke(app, ["categories", "validate", str(bad)])
    assert r.exit_code == 1 and f"{bad}:2:" in r.output.replace("\n", "") and "did you mean 'name'" in r.output.replace("\n", "")
    good = tmp_path / "good.yaml"
    good.write_text(RULES)
    r = runner.invoke(app, ["categories", "validate", str(good)])
    assert r.exit_code == 0 and "2 categories, OK" in " ".join(r.output.split())
    r = runner.invoke(app, ["categories", "list"])
    assert r.exit_code == 0 and "escalation-asked" in r.output
    r = runner.invoke(app, ["categories", "apply", str(good)])
    assert r.exit_code == 0, r.output
    billing_calls = [c.id for c in store.list_calls(limit=100) if c.id.startswith("billing")]
    assert billing_calls and all("refund" in {k.category for k in store.categories(i)} for i in billing_calls)
    # Applying other rules replaces the categories of finished calls.
    other = tmp_path / "other.yaml"
    other.write_text("categories:\n  - name: router\n    match: {phrase: router}\n")
    assert runner.invoke(app, ["categories", "apply", str(other)]).exit_code == 0
    assert all(store.categories(i) == [] for i in billing_calls)


def test_sentence_loudness_comes_from_its_audio():
    rate = 16000
    audio = np.concatenate([0.01 * np.ones(rate, np.float32), 0.5 * np.ones(rate, np.float32)])
    u = UtteranceSpan(index=0, start=10.0, end=12.0, offset=0.0)  # the utterance starts 10 s into the call
    quiet = with_loudness(Sentence(index=0, text="a", start=10.0, end=11.0), audio, u)
    loud = with_loudness(Sentence(index=1, text="b", start=11.0, end=12.0), audio, u)
    assert quiet.loudness_dbfs == pytest.approx(-40.0, abs=0.01)
    assert loud.loudness_dbfs == pytest.approx(-6.02, abs=0.01)


def test_categories_off_stores_none_and_reads_no_rule_file(store, tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("categories:\n  - name: x\n    match: {sentiment: angry}\n")  # would stop the stage if read
    settings = Settings(data_dir=tmp_path, categories=False, categories_file=bad)
    assert build_stage("store", PipelineResources(settings)).categories is None
    writer = ResultWriter(store, None)
    writer.handle_batch(billing("rec-off", "recorded"))
    assert store.get_call("rec-off").status == "done" and store.categories("rec-off") == []


def test_sentence_loudness_off(tmp_path, monkeypatch):
    from callsense.asr.base import RecognizedSegment, RecognizedWord
    from callsense.audio.pcm import float_to_s16le
    from callsense.core.events import UtteranceBatch
    from callsense.ingest.stages.transcribe import UtteranceTranscriber
    from callsense.store.blobs import BlobStore

    class Engine:
        fixed_window_s = None
        model_id = "scripted"

        def transcribe(self, audio):
            return [RecognizedSegment("Hello there.", 0.1, 0.9, [RecognizedWord(" Hello", 0.1, 0.4, 0.9),
                                                                  RecognizedWord(" there.", 0.5, 0.9, 0.9)])]

    blobs = BlobStore(tmp_path, 1 << 20)
    ev = UtteranceBatch(call_id="c1", channel=0, speaker="agent", utterances=[UtteranceSpan(index=0, start=0.0, end=1.0, offset=0.0)],
                        audio=blobs.put(float_to_s16le(0.1 * np.ones(16000, np.float32))))
    levels = {on: UtteranceTranscriber(Engine(), blobs, loudness=on).handle_batch([ev])[0].sentences[0].loudness_dbfs
              for on in (True, False)}
    assert levels[True] == pytest.approx(-20.0, abs=0.1) and levels[False] is None
    monkeypatch.setenv("CALLSENSE_SENTENCE_LOUDNESS", "false")
    monkeypatch.setenv("CALLSENSE_CATEGORIES", "0")
    assert (Settings().pipeline.sentence_loudness, Settings().pipeline.categories) == (False, False)
    assert Settings(data_dir=tmp_path).pipeline.sentence_loudness is False
