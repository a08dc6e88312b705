"""The NeMo ASR job end to end: a tiny CTC checkpoint built here, fine-tuned on a NeMo
manifest made from ../shared/data/audio (decoded once into the audio cache), resumed from
its Lightning checkpoint after a crash, saved as .nemo, loaded by the NeMo engine, scored
and registered. Needs the `nemo` extra."""

from __future__ import annotations

import importlib.util
import json

import pytest

if importlib.util.find_spec("nemo") is None:
    pytest.skip("NeMo is not installed (the `nemo` extra)", allow_module_level=True)

from callsense.finetune.datasets import DatasetStore, SplitPlan  # noqa: E402
from callsense.finetune.jobs.asr import AsrJobConfig, build_tiny_ctc, run_asr_job  # noqa: E402
from callsense.finetune.jobs.trainer import TrainOptions  # noqa: E402
from callsense.finetune.runs import SilentProgress  # noqa: E402


class CrashAtEpochEnd(SilentProgress):
    def note(self, message: str) -> None:
        if message.startswith("epoch 1 "):
            raise RuntimeError("simulated crash after epoch 1")


def test_asr_job_end_to_end_with_resume(workspace, audio_manifest, tmp_path):
    ds = DatasetStore(workspace).build("asr", [f"audio-manifest:{audio_manifest}"], plan=SplitPlan(0.2, 0.3)).version
    model = build_tiny_ctc(tmp_path / "tiny.nemo")
    config = AsrJobConfig(dataset=ds.id, model=str(model), train=TrainOptions(epochs=2, batch_size=2, lr=1e-3, threads=2))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_asr_job(workspace, config, progress=CrashAtEpochEnd())
    run_dir = next(workspace.runs_dir.glob("asr-*"))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()

    run = run_asr_job(workspace, resume="last")
    assert run["status"] == "done" and run["resumed"] and run["id"] == run_dir.name
    assert [(e["epoch"], e["global_step"]) for e in run["epochs"]] == [(1, 2), (2, 4)], "epoch 1 was trained again"
    assert all("train_loss" in e and "val_wer" in e for e in run["epochs"])
    # the manifests of both attempts came from the cache: the second decoded nothing
    assert run["metrics"]["audio_cache"]["misses"] == 0 and run["metrics"]["audio_cache"]["hits"] == 10

    from callsense.asr.base import create_asr_engine

    tuned = run_dir / "model" / "model.nemo"
    engine = create_asr_engine(workspace.settings.model_copy(update={"asr_engine": "nemo", "nemo_model_path": tuned}))
    assert engine.model_id.startswith("nemo:model@")
    test = run["metrics"]["test"]
    assert test["n"] == len(ds.rows("test")) and test["words"] > 10 and "value" in test["wer"]
    assert "test_start_model" in run["metrics"]
    assert run["artifacts"]["registry"].startswith("asr v")
    manifest = json.loads((run_dir / "model" / "manifest.json").read_text())
    from callsense.core.claims import sha256_of

    assert manifest["sha256"] == sha256_of(tuned), "the registry can check the model file against its manifest"
