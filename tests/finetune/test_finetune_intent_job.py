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
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["head"]["pooling"] == "mean" and manifest["hyperparameters"]["lr_heads"] == 3e-3
    assert "callsense finetune intent-slot" in manifest["rebuild_command"] and "--pooling mean" in manifest["rebuild_command"]

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


def test_cls_pooling_and_the_shipping_folder(workspace, snips_dir, tmp_path):
    """`--pooling cls` reaches the network and the manifest (no silent drop); `--select-epoch
    last`, dropout and the slot loss weight are recorded; `--out` writes a folder the runtime
    loads, named after it, without the torch checkpoint."""
    train = write_seq_slice(snips_dir / "train", tmp_path / "snips" / "train", 48)
    ds = DatasetStore(workspace).build("intent-slot", [f"seq:{train}"], plan=SplitPlan(0.25, 0.0)).version
    shipped = tmp_path / "models" / "snips-joint-int8"
    config = IntentSlotJobConfig(dataset=ds.id, max_length=32, pooling="cls", dropout=0.2, slot_loss_weight=0.5, register=False,
                                 out=str(shipped), train=TrainOptions(epochs=1, batch_size=16, max_steps=2, threads=2,
                                                                      select_epoch="last", seed=7))
    run = run_intent_slot_job(workspace, config)
    assert run["status"] == "done" and "registry" not in run["artifacts"] and run["artifacts"]["out"] == str(shipped)
    assert run["config"]["pooling"] == "cls"
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["name"] == "snips-joint-int8"
    assert manifest["head"] == {"pooling": "cls", "dropout": 0.2, "intent_input": "the [CLS] token state",
                                "slot_input": "every token state (a word's tag sits on its first sub-token)"}
    hp = manifest["hyperparameters"]
    assert (hp["pooling"], hp["slot_loss_weight"], hp["seed"], hp["selection"].split()[0]) == ("cls", 0.5, 7, "last")
    assert "--pooling cls" in manifest["rebuild_command"] and "--select-epoch last" in manifest["rebuild_command"]
    assert not (shipped / "checkpoint").exists() and (workspace.runs_dir / run["id"] / "model" / "checkpoint").is_dir()

    from callsense.nlp.intent_slot.model import JointIntentSlotModel

    runtime = JointIntentSlotModel(shipped)
    assert runtime.model_id.startswith("snips-joint-int8@") and runtime.predict([["play", "jazz"]])[0].intent in runtime.intents
