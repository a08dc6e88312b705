"""The intent-slot job on a slice of SNIPS: a joint model trained for a few steps from
NeMo-format data, exported in the assistant's model format (its own runtime loads it),
scored by `callsense eval intent`, and registered."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="the fine-tuning jobs need the `train` extra (torch)")

from callsense.finetune.datasets import DatasetStore, SplitPlan  # noqa: E402
from callsense.finetune.jobs.intent_slot import IntentSlotJobConfig, run_intent_slot_job  # noqa: E402
from callsense.finetune.jobs.trainer import TrainOptions  # noqa: E402

from finetune_helpers import write_seq_slice  # noqa: E402


def test_intent_slot_job_end_to_end(workspace, snips_dir, tmp_path, monkeypatch):
    train = write_seq_slice(snips_dir / "train", tmp_path / "snips" / "train", 96)
    test = write_seq_slice(snips_dir / "dev", tmp_path / "snips" / "dev", 40)
    ds = DatasetStore(workspace).build("intent-slot", [f"seq:{train}", f"seq:{test}@test"], plan=SplitPlan(0.2, 0.0)).version
    nemo = ds.export()  # the job's data, in NeMo's format
    assert (nemo / "train.tsv").is_file() and (nemo / "dict.slots.csv").read_text().splitlines()[-1] == "O"

    config = IntentSlotJobConfig(dataset=ds.id, max_length=32,
                                 train=TrainOptions(epochs=2, batch_size=16, lr=1e-4, head_lr=3e-3, max_steps=6, threads=2))
    run = run_intent_slot_job(workspace, config)
    assert run["status"] == "done" and len(run["epochs"]) == 2
    assert all({"dev_intent_accuracy", "dev_slot_f1", "train_loss"} <= set(e) for e in run["epochs"])
    assert run["epochs"][-1]["train_loss"] < run["epochs"][0]["train_loss"] * 1.5
    model_dir = workspace.runs_dir / run["id"] / "model"

    from callsense.dialog.nlu.embedded import EmbeddedNlu
    from callsense.nlp.intent_slot.model import JointIntentSlotModel

    runtime = JointIntentSlotModel(model_dir)
    assert runtime.intents == ds.dictionaries["intents"] and runtime.slots == ds.dictionaries["slots"]
    pred = runtime.predict([["play", "some", "jazz", "music"]])[0]
    assert pred.intent in runtime.intents and len(pred.tags) == 4
    assert EmbeddedNlu(workspace.settings, model_dir=model_dir).parse("book a table for two").tokens

    test_metrics = run["metrics"]["test"]
    assert test_metrics["n"] == 40 and test_metrics["intent_accuracy"]["value"] > 1 / 7  # better than chance
    assert run["artifacts"]["registry"].startswith("intent-slot v")

    from callsense.cli import app

    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(workspace.settings.data_dir))
    res = CliRunner().invoke(app, ["eval", "intent", str(nemo), "--prefix", "test", "--model-dir", str(model_dir),
                                   "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert "intent accuracy" in " ".join(res.output.split()) and "slot F1" in " ".join(res.output.split())
    result = json.loads((tmp_path / "rep" / "result.json").read_text())
    assert abs(result["intent_accuracy"]["value"] - test_metrics["intent_accuracy"]["value"]) < 1e-9
