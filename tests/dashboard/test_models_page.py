"""The Models page on a real fine-tuning workspace: real dataset versions (MELD slices),
real ONNX sentiment models (the shipped one, and a deliberately degraded copy with its
negative and positive outputs swapped), their figures really scored on the version's test
split, the real promotion gate. No torch: the training runs are recorded as a job records
them (per-epoch entries, then the test evaluation), without training anything.

The data layer is tested without a browser; a manager promotes and rolls back, and a
reviewer reads, in headless Chromium against `callsense dashboard`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from callsense.dashboard.data import AccessDenied, User
from callsense.dashboard.models_data import Figure, ModelsData, compare, epoch_series, evaluation_figures, recorded_figures
from callsense.finetune.datasets import DatasetStore, DatasetVersion, SplitPlan
from callsense.finetune.evaluate import evaluate_sentiment_rows
from callsense.finetune.metrics import BootstrapOptions, intent_slot_metrics, wer_metrics
from callsense.finetune.promotion import run_gate
from callsense.finetune.registry import ModelRecord, ModelRegistry
from callsense.finetune.runs import RunRecord
from callsense.finetune.workspace import FinetuneError, Workspace

from dash_support import REPO, DashStore, add_users, make_dash_store, serve_dashboard
from test_browser import browser, no_exceptions, open_page, page, shot, sign_in  # noqa: F401  (fixtures)

sys.path.append(str(REPO / "tests" / "finetune"))  # the fine-tuning tests' model helpers
from finetune_helpers import degrade_sentiment_model, shipped_sentiment_dir, write_meld_slice  # noqa: E402

BOOTSTRAP = 300  # resamples: enough for a clear decision, quick on two cores
MANAGER = User("boss", frozenset({"manager"}))
REVIEWER = User("rita", frozenset({"reviewer"}))
AGENT = User("ag-1", frozenset({"agent"}), agent_id="ag-1")


@dataclass
class ModelsStore:
    ds: DashStore
    ws: Workspace
    dataset: DatasetVersion
    degraded: ModelRecord  # v2, serving (an earlier bad deploy)
    shipped_copy: ModelRecord  # v3, the candidate


def record_run(ws: Workspace, dataset: DatasetVersion, test: dict, model_dir: Path, dev_macro_f1: list[float]) -> dict:
    """A finished sentiment run as the job records it: one entry per epoch, then the exported
    model's evaluation on the dataset version's test split."""
    run = RunRecord.create(ws, "sentiment", {"dataset": dataset.id, "epochs": len(dev_macro_f1)}, dataset.id)
    for epoch, f1 in enumerate(dev_macro_f1, start=1):
        run.add_epoch({"epoch": epoch, "steps": 40, "global_step": 40 * epoch, "partial": False,
                       "train_loss": round(1.0 / epoch, 4), "train_seconds": 12.5, "dev_macro_f1": f1, "score": f1,
                       "best_epoch": epoch})
    run.finish({"best_epoch": len(dev_macro_f1), "dev_macro_f1": max(dev_macro_f1), "test": test}, {"model": str(model_dir)})
    return run.as_dict()


def register_with_run(ws: Workspace, dataset: DatasetVersion, test: dict, model_dir: Path, notes: str,
                      dev: list[float]) -> ModelRecord:
    run = record_run(ws, dataset, test, model_dir, dev)
    return ModelRegistry(ws).register("sentiment", model_dir, format="onnx-sentiment", dataset_version=dataset.id,
                                      run_id=run["id"], notes=notes, by="trainer",
                                      metrics={"test_macro_f1": test["macro_f1"], "dev_macro_f1": max(dev)})


@pytest.fixture(scope="module")
def meld_slices(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    """Six MELD train conversations, and twelve MELD dev conversations as the test split."""
    folder, meld = tmp_path_factory.mktemp("meld"), shared_data / "sentiment" / "meld"
    return (write_meld_slice(meld / "train.csv", folder / "train.csv", 6),
            write_meld_slice(meld / "dev.csv", folder / "test.csv", 12))


@pytest.fixture(scope="module")
def model_scores() -> dict:
    """(dataset id, model) -> the model really scored on that version's test split, once per module."""
    return {}


def scored(scores: dict, ws: Workspace, dataset: DatasetVersion, model: str, model_dir: Path) -> dict:
    if (dataset.id, model) not in scores:
        scores[dataset.id, model] = evaluate_sentiment_rows(model_dir, dataset.rows("test"), ws.settings,
                                                            BootstrapOptions.from_settings(ws.settings))
    return scores[dataset.id, model]


@pytest.fixture
def models_store(tmp_path, meld_slices, model_scores) -> ModelsStore:
    """v1 the shipped model (registered by itself), v2 its degraded copy serving, v3 an
    identical copy of the shipped model waiting as a candidate; both v2 and v3 have a run."""
    train, test = meld_slices
    ds = make_dash_store(tmp_path / "data")
    add_users(ds.engine)
    ws = Workspace(ds.settings.model_copy(update={"bootstrap_samples": BOOTSTRAP}))
    dataset = DatasetStore(ws).build("sentiment", [f"meld:{train}", f"meld:{test}@test"], name="meld-slice",
                                     plan=SplitPlan(dev_ratio=0.2, test_ratio=0.0)).version
    degraded_dir = degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "degraded")
    degraded = register_with_run(ws, dataset, scored(model_scores, ws, dataset, "degraded", degraded_dir), degraded_dir,
                                 "negative and positive swapped", [0.41, 0.43])
    run_gate(ws, "sentiment", degraded.version, force=True, by="ops")  # the bad deploy a rollback would undo
    shipped = shipped_sentiment_dir()
    shipped_copy = register_with_run(ws, dataset, scored(model_scores, ws, dataset, "shipped", shipped), shipped,
                                     "the shipped model again", [0.60, 0.64, 0.65])
    return ModelsStore(ds, ws, dataset, ModelRegistry(ws).get("sentiment", degraded.version), shipped_copy)


def statuses(ws: Workspace) -> dict[int, str]:
    return {v.version: v.status for v in ModelRegistry(ws).versions("sentiment")}


# ------------------------------------------------------------------------ the data layer


def test_versions_carry_their_runs_figures_and_compare_with_the_serving_one(models_store):
    data = ModelsData(models_store.ws.settings, REVIEWER, models_store.ds.engine)
    assert data.started()
    versions = {v.version: v for v in data.versions("sentiment")}
    assert {v: x.status for v, x in versions.items()} == {1: "archived", 2: "serving", 3: "candidate"}
    shipped, degraded, candidate = versions[1], versions[2], versions[3]
    assert shipped.figures == {} and shipped.confusion is None  # the shipped default has no run here

    n = len(models_store.dataset.rows("test"))
    assert n > 80 and candidate.measured_on == f"{models_store.dataset.id}:test, {n} rows"
    f1 = candidate.figures["macro-F1"]
    assert f1.low < f1.value < f1.high and f1.high - f1.low > 0.01  # a real bootstrap interval
    assert {"accuracy", "negative recall", "positive precision", "neutral F1", "dev macro-F1"} <= set(candidate.figures)
    assert candidate.figures["dev macro-F1"].value == 0.65 and candidate.figures["dev macro-F1"].low is None
    cm = candidate.confusion
    assert cm.labels == ["negative", "neutral", "positive"] and sum(map(sum, cm.counts)) == n
    # Swapping two outputs moves the positives into the negative column and back.
    assert degraded.confusion.counts[2][0] > cm.counts[2][0] and degraded.confusion.counts[0][2] > cm.counts[0][2]

    c = compare(candidate, degraded)
    assert c.candidate.version == 3 and c.serving.version == 2 and c.same_test_set
    rows = {label: (a, b) for label, a, b in c.rows}
    assert rows["macro-F1"][0].value > rows["macro-F1"][1].value
    assert list(rows)[:2] == ["macro-F1", "accuracy"]
    assert not compare(shipped, degraded).same_test_set  # no figures for v1: nothing to pair


def test_runs_epochs_and_dataset_lineage(models_store):
    data = ModelsData(models_store.ws.settings, REVIEWER, models_store.ds.engine)
    runs = data.runs("sentiment")
    assert [r.id for r in runs] == [models_store.shipped_copy.run_id, models_store.degraded.run_id]  # newest first
    assert all(r.status == "done" and r.dataset_version == models_store.dataset.id and r.wall_s > 0 for r in runs)
    series = epoch_series(runs[0].epochs)
    assert {p["metric"] for p in series} == {"train_loss", "dev_macro_f1"}  # bookkeeping is not plotted
    assert [p["value"] for p in series if p["metric"] == "dev_macro_f1"] == [0.60, 0.64, 0.65]
    assert data.runs("asr") == []

    [d] = data.datasets("sentiment")
    counts = models_store.dataset.counts()
    assert d.id == models_store.dataset.id and d.name == "meld-slice" and d.counts == counts
    assert counts["test"] > 80 and counts["train"] > 0
    assert d.lineage_sources == {"files": sum(counts.values())} and d.lineage_who == {"(file)": sum(counts.values())}
    assert data.datasets("intent-slot") == []


def test_figures_of_intent_slot_and_asr_evaluations():
    """Whatever a version's evaluation holds is shown: intent accuracy and slot F1, or WER."""
    opts = BootstrapOptions(samples=200)
    intent = intent_slot_metrics(["buy", "ask", "buy"], [["B-item", "O"], ["O", "O"], ["O", "B-item"]],
                                 ["buy", "buy", "buy"], [["B-item", "O"], ["O", "O"], ["O", "O"]], opts)
    figures = evaluation_figures(intent)
    assert list(figures) == ["intent accuracy", "slot F1", "whole query right"]
    assert figures["intent accuracy"].value == pytest.approx(2 / 3, abs=1e-6)
    assert figures["slot F1"].value == pytest.approx(2 / 3, abs=1e-6)
    assert figures["intent accuracy"].low < figures["intent accuracy"].high
    wer = evaluation_figures(wer_metrics(["where is my parcel", "thank you"], ["where is my parcels", "thank you"], opts))
    assert list(wer) == ["WER"] and wer["WER"].value == pytest.approx(1 / 6, abs=1e-6)
    # Figures recorded with the registry version: named as the jobs name them, bare numbers without an interval.
    assert recorded_figures({"test_wer": 0.125, "test_slot_f1": None, "dev_macro_f1": {"value": 0.6, "low": 0.5, "high": 0.7},
                             "epochs": True}) == {"WER": Figure(0.125), "dev macro-F1": Figure(0.6, 0.5, 0.7)}
    assert Figure(0.125).text() == "0.125" and Figure(0.6, 0.5, 0.7).text(2) == "0.60 [0.50, 0.70]"


def test_only_managers_deploy_and_a_refusal_keeps_the_serving_model(models_store, tmp_path):
    ws = models_store.ws
    reviewer = ModelsData(ws.settings, REVIEWER, models_store.ds.engine)
    with pytest.raises(AccessDenied, match="manager"):
        reviewer.promote("sentiment", 3)
    with pytest.raises(AccessDenied, match="manager"):
        reviewer.rollback("sentiment")
    with pytest.raises(AccessDenied):
        ModelsData(ws.settings, AGENT, models_store.ds.engine).versions("sentiment")
    assert statuses(ws) == {1: "archived", 2: "serving", 3: "candidate"}
    assert not reviewer.may_deploy and ModelsData(ws.settings, MANAGER).may_deploy

    # Another copy of the serving (degraded) model is not better beyond chance: the gate keeps v2.
    same = ModelRegistry(ws).register("sentiment", degrade_sentiment_model(shipped_sentiment_dir(), tmp_path / "again"),
                                      format="onnx-sentiment", dataset_version=models_store.dataset.id)
    result = ModelsData(ws.settings, MANAGER, models_store.ds.engine).promote("sentiment", same.version)
    d = result.decision
    assert not d.promoted and d.reason.startswith("kept sentiment v2") and "not better beyond chance" in d.reason
    assert d.delta == {"value": 0.0, "low": 0.0, "high": 0.0} and d.holdout == f"{models_store.dataset.id}:test"
    assert statuses(ws)[2] == "serving" and statuses(ws)[same.version] == "candidate"
    assert result.report.is_file() and d.reason in result.report.read_text()
    event = ModelRegistry(ws).events("sentiment")[0]
    assert (event["action"], event["by"], event["version"]) == ("refuse", "boss", same.version)

    # A version registered without its dataset version needs a holdout named: the gate says so and nothing changes.
    bare = ModelRegistry(ws).register("sentiment", shipped_sentiment_dir(), format="onnx-sentiment")
    with pytest.raises(FinetuneError, match="has no dataset version: give the holdout"):
        ModelsData(ws.settings, MANAGER).promote("sentiment", bare.version)
    assert statuses(ws)[2] == "serving"


def test_a_store_without_a_workspace_says_what_to_run(tmp_path):
    from streamlit.testing.v1 import AppTest

    ds = make_dash_store(tmp_path / "fresh")
    data = ModelsData(ds.settings, REVIEWER, ds.engine)
    assert not data.started() and data.runs() == [] and data.datasets() == []
    reviewer = AppTest.from_function(render_models_page, args=(str(tmp_path / "fresh"), "rita", ["reviewer"]),
                                     default_timeout=60).run()
    assert not reviewer.exception, [e.value for e in reviewer.exception]
    text = " ".join(m.value for m in reviewer.markdown)
    assert "No fine-tuning workspace yet." in text and "callsense finetune sentiment --dataset REF" in text
    assert "Labelled data so far" in [s.value for s in reviewer.subheader] and not reviewer.button
    # The shipped model serves (v1); a manager's roll back has nowhere to go and says so.
    manager = AppTest.from_function(render_models_page, args=(str(tmp_path / "fresh"), "boss", ["manager"]),
                                    default_timeout=60).run()
    manager.button(key="models.rollback").click().run()
    assert not manager.exception and "nothing to roll back to" in manager.error[0].value
    assert {v.version: v.status for v in ModelRegistry(Workspace(ds.settings)).versions("sentiment")} == {1: "serving"}


def render_models_page(data_dir: str, username: str, roles: list) -> None:
    from callsense.core.settings import Settings
    from callsense.dashboard.data import DashboardData, User
    from callsense.dashboard.page_models import models_page
    from callsense.dashboard.registry import PageContext
    from callsense.store.db import make_engine

    settings = Settings(data_dir=data_dir)
    engine = make_engine(settings.resolved_database_url)
    user = User(username, frozenset(roles))
    models_page(PageContext(settings=settings, user=user, data=DashboardData(engine, user), engine=engine))


def test_the_page_imports_no_training_stack():
    """The dashboard runs without the `train` extra: loading the page may not pull in torch."""
    out = subprocess.run([sys.executable, "-c", "import sys, callsense.dashboard.page_models; "
                          "print(sorted(m for m in ('torch', 'transformers', 'nemo') if m in sys.modules))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]


# --------------------------------------------------------------------------- in a browser


def test_a_manager_promotes_through_the_gate_and_rolls_back(models_store, page, tmp_path):
    ws = models_store.ws
    with serve_dashboard(models_store.ds.env, tmp_path / "dash.log", {"CALLSENSE_BOOTSTRAP_SAMPLES": str(BOOTSTRAP)}) as served:
        sign_in(page, served.url, "maria")
        open_page(page, "Models")
        for heading in ("Versions", "Candidate vs serving", "Deploy", "Confusion matrix", "Training runs", "Dataset versions",
                        "History", "Labelled data so far"):
            page.get_by_role("heading", name=heading, exact=True).wait_for()
        page.locator("[data-testid=stDataFrame]").nth(3).wait_for()  # versions, runs, dataset versions, history
        # Side by side: the candidate (v3) and the serving version (v2), each figure with its interval.
        comparison = page.locator(".st-key-models-comparison")
        header = comparison.locator("thead").inner_text()
        assert "v3 (candidate)" in header and "v2 (serving)" in header, header
        cells = {row.locator("th").inner_text().strip(): [c.inner_text().strip() for c in row.locator("td").all()]
                 for row in comparison.locator("tbody tr").all()}
        versions = {v.version: v for v in ModelsData(ws.settings, MANAGER).versions("sentiment")}
        expected = {label: [a.text(4), b.text(4)] for label, a, b in compare(versions[3], versions[2]).rows}
        assert cells["macro-F1"] == expected["macro-F1"] and cells["positive recall"] == expected["positive recall"]
        assert {"accuracy", "negative recall", "positive precision", "neutral F1"} <= set(cells)
        page.get_by_text(f"Both measured on {models_store.dataset.id}:test").wait_for()
        page.locator(".st-key-models-confusion-sentiment").wait_for()
        page.locator("[data-testid=stVegaLiteChart]").first.wait_for()  # the heat-map and the epoch chart
        no_exceptions(page)
        shot(page, "07-models")

        page.get_by_role("button", name="Promote v3").click()
        page.get_by_role("button", name="Run the promotion gate").click()
        outcome = page.locator(".st-key-models-outcome")
        outcome.get_by_text("promoted: macro_f1 improves by").wait_for(timeout=120_000)
        outcome.get_by_text("improvement (paired)").wait_for()
        no_exceptions(page)
        assert statuses(ws) == {1: "archived", 2: "archived", 3: "serving"}
        event = ModelRegistry(ws).events("sentiment")[0]
        assert (event["action"], event["by"], event["version"]) == ("promote", "maria", 3)
        assert event["detail"]["delta"]["low"] > 0
        shot(page, "08-models-promoted")

        page.get_by_role("button", name="Roll back").click()
        page.get_by_text("sentiment v3 serves now").wait_for()
        assert statuses(ws)[3] == "serving"  # opening the confirmation changes nothing
        page.get_by_role("button", name="Confirm roll back").click()
        outcome.get_by_text("rolled back: sentiment v2 serves again (v3 archived)").wait_for()
        no_exceptions(page)
        assert statuses(ws) == {1: "archived", 2: "serving", 3: "archived"}
        assert ModelRegistry(ws).events("sentiment")[0]["action"] == "rollback"


def test_a_reviewer_reads_without_deploy_buttons(models_store, page, tmp_path):
    with serve_dashboard(models_store.ds.env, tmp_path / "dash.log") as served:
        sign_in(page, served.url, "rita")
        open_page(page, "Models")
        page.get_by_role("heading", name="Candidate vs serving").wait_for()
        page.locator(".st-key-models-comparison").get_by_text("macro-F1", exact=True).wait_for()
        page.get_by_role("heading", name="Labelled data so far").wait_for()
        page.locator("[data-testid=stVegaLiteChart]").first.wait_for()
        no_exceptions(page)
        assert page.get_by_role("heading", name="Deploy").count() == 0
        for name in ("Promote v3", "Run the promotion gate", "Roll back", "Confirm roll back"):
            assert page.get_by_role("button", name=name).count() == 0, name
    assert statuses(models_store.ws) == {1: "archived", 2: "serving", 3: "candidate"}
