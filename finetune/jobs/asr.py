"""`callsense finetune asr`: fine-tune a NeMo ASR checkpoint (`.nemo`, CTC or RNN-T,
character or BPE) on an ASR dataset version with `nemo_toolkit` (the `nemo` extra) and
PyTorch Lightning.

The dataset version is written as NeMo manifests over 16 kHz mono WAVs from the
decoded-audio cache (decoded once by content hash; a re-run or the next epoch reads PCM
straight from disk). A Lightning checkpoint (`last.ckpt`, written at every epoch's end) makes the run resumable; a
callback records each epoch's training loss and validation WER in the run record; the
result is saved as `model.nemo`, scored once on the test split through callsense's NeMo
engine and registered as an `asr` candidate.

`build_tiny_ctc()` makes a tiny randomly initialised character CTC model: tests and CI
prove the job end to end with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from callsense.finetune.jobs.base import Job, JobConfig, JobContext, JobResult, TrainOptions, register_candidate
from callsense.finetune.runs import Progress
from callsense.finetune.workspace import FinetuneError, Workspace, write_json

NEMO_EXTRA_HINT = "pip install 'callsense[nemo]' (nemo_toolkit[asr]==3.0.0 and torch)"
CHAR_LABELS = list(" abcdefghijklmnopqrstuvwxyz'")


def require_nemo():
    try:
        import lightning.pytorch as pl  # noqa: F401
        import torch  # noqa: F401
        from nemo.collections.asr.models import ASRModel  # noqa: F401
    except ImportError as e:
        raise FinetuneError(f"the ASR job needs NeMo ({e.name or e} is missing): {NEMO_EXTRA_HINT}") from None
    logging.getLogger("nemo_logger").setLevel(logging.ERROR)


class AsrJobConfig(JobConfig):
    job: ClassVar[str] = "asr"

    model: str = Field(min_length=1, description="path of the .nemo checkpoint to start from")
    name: str = Field("asr", min_length=1, description="registry name")
    max_duration: float = Field(30.0, gt=0, description="clips longer than this (s) are left out of training")
    train: TrainOptions = Field(default_factory=lambda: TrainOptions(epochs=5, batch_size=4, lr=1e-4, warmup_ratio=0.0))


def build_tiny_ctc(path: Path, seed: int = 0) -> Path:
    """A tiny character CTC model (one separable conv block): seconds to build and train."""
    require_nemo()
    import torch
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    cfg = OmegaConf.create({
        "sample_rate": 16000,
        "labels": CHAR_LABELS,
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", "sample_rate": 16000,
                         "features": 16, "n_fft": 512, "window_size": 0.025, "window_stride": 0.01, "dither": 0.0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 16, "activation": "relu",
                    "conv_mask": True,
                    "jasper": [{"filters": 32, "repeat": 1, "kernel": [11], "stride": [2], "dilation": [1], "dropout": 0.0,
                                "residual": False, "separable": True}]},
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 32, "num_classes": len(CHAR_LABELS),
                    "vocabulary": CHAR_LABELS},
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    EncDecCTCModel(cfg=cfg).save_to(str(path))
    return path


def _data_config(model, manifest: Path, batch_size: int, shuffle: bool, max_duration: float) -> dict:
    cfg = {"manifest_filepath": str(manifest), "sample_rate": int(getattr(model.cfg, "sample_rate", 16000)),
           "batch_size": batch_size, "shuffle": shuffle, "num_workers": 0, "pin_memory": False, "max_duration": max_duration,
           "trim_silence": False}
    if not hasattr(model, "tokenizer"):  # character models name their vocabulary
        vocab = getattr(model.decoder, "vocabulary", None) or list(model.cfg.get("labels", CHAR_LABELS))
        cfg["labels"] = list(vocab)
    return cfg


class AsrJob(Job[AsrJobConfig]):
    name = "asr"
    dataset_kind = "asr"
    config_type = AsrJobConfig

    def requirements(self) -> None:
        require_nemo()

    def prepare(self, ws, config, dataset) -> dict:
        from callsense.asr.base import AsrUnavailable
        from callsense.asr.engines.nemo import checked_checkpoint

        try:
            checked_checkpoint(Path(config.model))
        except AsrUnavailable as e:
            raise FinetuneError(str(e)) from None
        return {}

    def execute(self, ctx: JobContext[AsrJobConfig]) -> JobResult:
        import lightning.pytorch as pl
        import torch
        from nemo.collections.asr.models import ASRModel

        from callsense.finetune.audio_cache import AudioCache
        from callsense.finetune.jobs.trainer import pick_device

        ws, config, dataset, run, progress, resume = ctx.ws, ctx.config, ctx.dataset, ctx.run, ctx.progress, ctx.resumed
        source = Path(config.model)
        cache = AudioCache(ws.audio_cache_dir, ws.settings.pipeline.decoder)
        progress.note("writing NeMo manifests (decoded-audio cache)")
        manifests = dataset.export("nemo-asr", cache=cache, out_dir=run.folder / "manifests")
        cache_stats = cache.stats.as_dict()
        progress.note(f"audio: {cache.stats.line()}")
        opts = config.train
        torch.set_num_threads(opts.threads)
        torch.manual_seed(opts.seed)
        device = pick_device(opts.device)
        model = ASRModel.restore_from(str(source), map_location=torch.device("cpu"))
        model.setup_training_data(_data_config(model, manifests / "train_manifest.json", opts.batch_size, True, config.max_duration))
        has_dev = (manifests / "dev_manifest.json").is_file()
        if has_dev:
            model.setup_validation_data(_data_config(model, manifests / "dev_manifest.json", opts.batch_size, False, config.max_duration))
        model.setup_optimization(optim_config={"name": "adamw", "lr": opts.lr, "weight_decay": opts.weight_decay, "betas": [0.9, 0.98]})

        class RecordEpochs(pl.Callback):
            def on_train_epoch_start(self, trainer, module):
                progress.start(f"epoch {trainer.current_epoch + 1}/{opts.epochs}", trainer.num_training_batches)

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
                progress.advance(1, loss=f"{float(loss):.3f}" if loss is not None else "")

            def on_train_epoch_end(self, trainer, module):
                # The checkpoint first: whatever happens next, the epoch is not trained again.
                trainer.save_checkpoint(str(last))
                metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()
                           if k in ("train_loss", "val_loss", "val_wer")}
                entry = {"epoch": trainer.current_epoch + 1, "global_step": trainer.global_step, **metrics}
                run.add_epoch(entry)
                progress.note(" ".join(f"{k} {v}" for k, v in entry.items()))

        ckpt_dir = run.folder / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        last = ckpt_dir / "last.ckpt"
        trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=opts.epochs,
                             max_steps=opts.max_steps or -1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False, callbacks=[RecordEpochs()], num_sanity_val_steps=0,
                             log_every_n_steps=1, check_val_every_n_epoch=1, limit_val_batches=1.0 if has_dev else 0)
        model.set_trainer(trainer)
        if resume and last.is_file():
            progress.note(f"resuming {run.id} from {last}")
        trainer.fit(model, ckpt_path=str(last) if last.is_file() else None)
        if trainer.global_step == 0:
            raise FinetuneError(f"run {run.id} took no training step: refusing to save and register an untrained model")
        out_dir = run.folder / "model"
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / "model.nemo"
        model.save_to(str(model_path))
        metrics: dict = {"audio_cache": cache_stats, "epochs_trained": trainer.current_epoch, "global_step": trainer.global_step}
        test_rows = dataset.rows("test")
        if test_rows:
            from callsense.finetune.evaluate import asr_system, evaluate_asr_rows
            from callsense.finetune.metrics import BootstrapOptions

            progress.note(f"scoring model.nemo and the starting model on {len(test_rows)} test clips")
            rep = evaluate_asr_rows(test_rows, [asr_system(f"nemo:{model_path}", ws.settings),
                                                asr_system(f"nemo:{source}", ws.settings)],
                                    cache, BootstrapOptions.from_settings(ws.settings))
            tuned, base = rep["systems"][f"nemo:{model_path}"], rep["systems"][f"nemo:{source}"]
            for s in (tuned, base):
                s.pop("hypotheses", None)
            metrics["test"] = {**tuned, "n": rep["n"]}
            metrics["test_start_model"] = base
        from callsense.core.claims import sha256_of

        write_json(out_dir / "manifest.json", {"name": f"{config.name}-{run.id}", "format": "nemo", "model_file": "model.nemo",
                                               "sha256": sha256_of(model_path), "started_from": str(source), "dataset_version": dataset.id, "run_id": run.id,
                                               "metrics": {k: v for k, v in metrics.items() if k != "test_start_model"}})
        artifacts = {"model": str(model_path)}
        if config.register_candidate:
            wer = (metrics.get("test") or {}).get("wer", {}).get("value")
            artifacts["registry"] = register_candidate(ctx, out_dir, format="nemo", metrics={"test_wer": wer},
                                                       notes=f"finetune asr from {source.name}")
        return JobResult(metrics, artifacts)


def run_asr_job(ws: Workspace, config: AsrJobConfig | None = None, *, resume: str | None = None,
                progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
    return AsrJob().run(ws, config, resume=resume, progress=progress, threads=threads, device=device)
