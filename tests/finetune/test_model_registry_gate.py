"""The model registry, the promotion gate and hot reload, with real ONNX models scored on a
real holdout (MELD dev conversations). No torch: "worse" is the shipped model with two
outputs swapped (a deliberately degraded model), "better" is the shipped model against that
degraded one serving, "equal" is an identical copy."""

from __future__ import annotations

import shutil
import time

import pytest
from typer.testing import CliRunner

from callsense.finetune.datasets import DatasetStore, SplitPlan
from callsense.finetune.promotion import run_gate
from callsense.finetune.registry import ModelRegistry
from callsense.finetune.workspace import Workspace

from finetune_helpers import degrade_sentiment_model, shipped_sentiment_dir, write_meld_slice

def flat(text: str) -> str:
    return " ".join(text.split())


POSITIVE, NEGATIVE = "Thank you so much, that is wonderful news!", "This is awful, I am really angry about it."


@pytest.fixture
def holdout(workspace, meld_dir, tmp_path):
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 25)
    return DatasetStore(workspace).build("sentiment", [f"meld:{dev}@test"], name="holdout").version


def test_the_shipped_model_is_version_1_and_serves(workspace):
    reg = ModelRegistry(workspace)
    serving = reg.serving("sentiment")
    assert serving.version == 1 and serving.artifact_dir == shipped_sentiment_dir() and serving.format == "onnx-sentiment"


def test_gate_refuses_worse_and_equal_promotes_better_and_rolls_back(workspace, holdout, tmp_path):
    reg = ModelRegistry(workspace)
    shipped = shipped_sentiment_dir()
    worse = reg.register("sentiment", degrade_sentiment_model(shipped, tmp_path / "worse"), format="onnx-sentiment",
                         notes="deliberately degraded")
    d = run_gate(workspace, "sentiment", worse.version, holdout=f"{holdout.id}:test")
    assert not d.promoted and d.delta["high"] < 0, d.reason
    assert d.reason.startswith("kept sentiment v1") and d.n == len(holdout.rows("test")) > 200
    assert d.candidate_score["value"] < d.serving_score["value"]
    assert reg.serving("sentiment").version == 1

    same = reg.register("sentiment", shipped, format="onnx-sentiment", notes="an identical copy")
    d = run_gate(workspace, "sentiment", same.version, holdout=f"{holdout.id}:test")
    assert not d.promoted and d.delta == {"value": 0.0, "low": 0.0, "high": 0.0}, "equal is not better"

    # An earlier bad deploy: the degraded model serves (forced; recorded as such) ...
    forced = run_gate(workspace, "sentiment", worse.version, force=True)
    assert forced.promoted and reg.serving("sentiment").version == worse.version
    # ... and the shipped model, as a new candidate, beats it on the same holdout.
    better = reg.register("sentiment", shipped, format="onnx-sentiment", notes="the shipped model again")
    d = run_gate(workspace, "sentiment", better.version, holdout=f"{holdout.id}:test")
    assert d.promoted and d.delta["low"] > 0, d.reason
    statuses = {v.version: v.status for v in reg.versions("sentiment")}
    assert statuses == {1: "archived", worse.version: "archived", same.version: "candidate", better.version: "serving"}

    assert reg.rollback("sentiment").version == worse.version  # one command back
    assert reg.rollback("sentiment").version == better.version  # and forward again
    actions = [e["action"] for e in reg.events("sentiment")]
    assert actions[:2] == ["rollback", "rollback"] and "refuse" in actions and "promote" in actions


def test_gate_refuses_a_holdout_the_candidate_was_trained_on(workspace, meld_dir, tmp_path):
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 10)
    ds = DatasetStore(workspace).build("sentiment", [f"meld:{dev}"], plan=SplitPlan(0.0, 0.5)).version
    reg = ModelRegistry(workspace)
    cand = reg.register("sentiment", shipped_sentiment_dir(), format="onnx-sentiment", dataset_version=ds.id)
    d = run_gate(workspace, "sentiment", cand.version, holdout=f"{ds.id}:train")
    assert not d.promoted and "trained on" in d.reason and d.delta is None
    assert reg.serving("sentiment").version == 1


def test_workers_pick_up_a_promoted_model_without_a_restart(workspace, tmp_path):
    from callsense.nlp.sentiment.base import create_sentiment_model

    settings = workspace.settings.model_copy(update={"sentiment_backend": "serving", "serving_reload_s": 0.05})
    model = create_sentiment_model(settings)
    labels = [s.label for s in model.score([POSITIVE, NEGATIVE])]
    assert labels == ["positive", "negative"] and model.model_id.startswith("sentiment@v1:")

    reg = ModelRegistry(workspace)
    worse = reg.register("sentiment", degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "worse"), format="onnx-sentiment")
    reg.set_serving("sentiment", worse.version, action="promote")

    def served_by(version: int, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = [s.label for s in model.score([POSITIVE, NEGATIVE])]  # a worker scoring batch after batch
            if model.model_id.startswith(f"sentiment@v{version}:"):
                return out
            time.sleep(0.05)
        pytest.fail(f"still serving {model.model_id} after {timeout} s")

    assert served_by(worse.version) == ["negative", "positive"]  # the swapped model answers now
    reg.rollback("sentiment")
    assert served_by(1) == ["positive", "negative"]


@pytest.mark.postgres
def test_registry_and_reload_on_postgresql(postgres_url, tmp_path):
    from callsense.core.settings import Settings
    from callsense.finetune.serving import ServingWatcher

    ws = Workspace(Settings(data_dir=tmp_path / "pg", database_url=postgres_url))
    reg = ModelRegistry(ws)
    base = reg.serving("sentiment")  # the shipped model, or what an earlier test left serving
    copy = reg.register("sentiment", shipped_sentiment_dir(), format="onnx-sentiment")
    loads = []
    watcher = ServingWatcher(ws.engine, "sentiment", lambda folder: loads.append(folder) or folder, interval_s=0.0)
    assert watcher.version == base.version
    reg.set_serving("sentiment", copy.version, action="promote")
    assert watcher.refresh(block=True) and watcher.version == copy.version
    assert reg.rollback("sentiment").version == base.version
    assert watcher.refresh(block=True) and watcher.version == base.version and len(loads) == 3


def test_cli_eval_promote_list_rollback(workspace, holdout, meld_dir, tmp_path, monkeypatch):
    from callsense.cli import app

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    monkeypatch.setenv("CALLSENSE_BOOTSTRAP_SAMPLES", "300")
    runner = CliRunner()
    dev = write_meld_slice(meld_dir / "dev.csv", tmp_path / "eval.csv", 15)
    report = tmp_path / "report"
    res = runner.invoke(app, ["eval", "sentiment", str(dev), "--report", str(report)])
    assert res.exit_code == 0, res.output
    assert "macro-F1" in flat(res.output) and "negative" in flat(res.output) and "[" in flat(res.output)
    assert (report / "report.md").read_text().count("|") > 20 and (report / "report.html").is_file()
    assert (report / "confusion.png").stat().st_size > 1000 and (report / "per_class.png").is_file()

    reg = ModelRegistry(workspace)
    worse = reg.register("sentiment", degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "worse"), format="onnx-sentiment")
    res = runner.invoke(app, ["models", "promote", "sentiment", str(worse.version), "--holdout", f"{holdout.id}:test"])
    assert res.exit_code == 2 and "kept sentiment v1" in flat(res.output), res.output
    res = runner.invoke(app, ["models", "list", "sentiment"])
    assert res.exit_code == 0 and "serving" in flat(res.output) and "candidate" in flat(res.output)
    res = runner.invoke(app, ["models", "rollback", "sentiment"])
    assert res.exit_code == 1 and "nothing to roll back" in flat(res.output) and "Traceback" not in flat(res.output)
    res = runner.invoke(app, ["models", "promote", "sentiment", "99"])
    assert res.exit_code == 1 and "no model sentiment v99" in flat(res.output)
    shutil.rmtree(report)
