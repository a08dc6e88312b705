"""int8 ONNX export of a trained transformers model, with the shipped sentiment model's own
exporter (`callsense.nlp.sentiment.build_model.export_fp32_onnx`: TorchScript, opset 17,
dynamic batch and sequence axes, fp32-vs-torch check) followed by onnxruntime dynamic int8
quantization, the same recipe that built the shipped models."""

from __future__ import annotations

import tempfile
from pathlib import Path


def export_int8_onnx(module, encoder, out_path: Path, sample, check=None, *, output_names=("logits",),
                     sequence_outputs=(), threads: int = 2, per_channel: bool = False) -> dict:
    """`module(input_ids, attention_mask)` -> `out_path` (int8). `sample`/`check`: (ids, mask) numpy batches."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from callsense.nlp.sentiment import build_model

    build_model.use_eager_attention(encoder)
    module = module.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_ids, check_mask = check if check is not None else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model_fp32.onnx"
        max_diff = build_model.export_fp32_onnx(module, fp32, sample[0], sample[1], check_ids=check_ids, check_mask=check_mask,
                                                output_names=output_names, sequence_outputs=sequence_outputs, threads=threads)
        quantize_dynamic(str(fp32), str(out_path), weight_type=QuantType.QInt8, per_channel=per_channel)
        fp32_size = fp32.stat().st_size
    return {
        "inputs": ["input_ids", "attention_mask"],
        "outputs": list(output_names),
        "opset": 17,
        "fp32_vs_torch_max_abs_diff": max_diff,
        "model_size_bytes": out_path.stat().st_size,
        "quantization": {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8",
                         "per_channel": per_channel, "fp32_size_bytes": fp32_size},
    }
