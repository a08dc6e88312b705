"""The NeMo engine on a `.nemo` checkpoint this test builds: a tiny randomly initialised
CTC model (ConvASR encoder, character vocabulary), saved, restored through the engine and
run on real audio. Its words are random; the plumbing is what is checked. Needs the
optional extra (`pip install callsense[nemo]`); without it only the clear "install the
extra" error is checked."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path

import numpy as np
import pytest

from callsense.asr.base import AsrUnavailable, RecognizedSegment, create_asr_engine
from callsense.core.settings import Settings

HAS_NEMO = importlib.util.find_spec("nemo") is not None
needs_nemo = pytest.mark.skipif(not HAS_NEMO, reason="NeMo is not installed (optional extra: pip install callsense[nemo])")
LABELS = list(" abcdefghijklmnopqrstuvwxyz'")


def build_tiny_ctc(path: Path) -> Path:
    import torch
    from nemo.collections.asr.models import EncDecCTCModel
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    cfg = OmegaConf.create({
        "sample_rate": 16000,
        "labels": LABELS,
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor", "sample_rate": 16000,
                         "features": 16, "n_fft": 512, "window_size": 0.025, "window_stride": 0.01, "dither": 0.0},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": 16, "activation": "relu",
                    "conv_mask": True,
                    "jasper": [{"filters": 32, "repeat": 1, "kernel": [11], "stride": [2], "dilation": [1], "dropout": 0.0,
                                "residual": False, "separable": True}]},
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 32, "num_classes": len(LABELS),
                    "vocabulary": LABELS},
    })
    EncDecCTCModel(cfg=cfg).save_to(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_nemo(tmp_path_factory) -> Path:
    return build_tiny_ctc(tmp_path_factory.mktemp("nemo") / "tiny-ctc.nemo")


@needs_nemo
def test_restore_and_transcribe_a_built_checkpoint(tiny_nemo, shared_clip):
    engine = create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=tiny_nemo, nemo_batch_size=2))
    assert engine.model_id.startswith("nemo:tiny-ctc@") and len(engine.model_id.split("@")[1]) == 12
    audio, _ = shared_clip("spk1_snt1.wav")
    segments = list(engine.transcribe(audio))
    assert all(isinstance(s, RecognizedSegment) and isinstance(s.text, str) for s in segments)
    for s in segments:
        assert s.words and all(0 <= w.start <= w.end <= audio.size / 16000 + 0.1 for w in s.words)
        assert set(s.text) <= set(LABELS)
    batch = engine.transcribe_batch([audio, np.zeros(0, np.float32), audio[:8000]])
    assert len(batch) == 3 and batch[1] == []
    assert [s.text for s in batch[0]] == [s.text for s in segments]  # same clip, same (deterministic) output


@needs_nemo
def test_nemo_engine_in_the_transcribe_stage(tiny_nemo, shared_audio, tmp_path):
    from callsense.ingest.pipeline import PipelineResources, build_stage
    from callsense.ingest.sources import recorded_call

    res = PipelineResources(Settings(data_dir=tmp_path, asr_engine="nemo", nemo_model_path=tiny_nemo))
    batches = [e for e in build_stage("segment", res).handle_batch([recorded_call(shared_audio / "spk1_snt3.wav", res.blobs)])
               if e.kind == "utterance_batch"]
    out = build_stage("transcribe", res).handle_batch(batches)
    assert out and all(e.kind == "transcribed" and e.asr_model.startswith("nemo:tiny-ctc@") for e in out)


@needs_nemo
def test_corrupt_checkpoints_are_clear_errors(tiny_nemo, tmp_path):
    garbage = tmp_path / "garbage.nemo"
    garbage.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(AsrUnavailable, match=f"{garbage} is not a readable .nemo checkpoint"):
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=garbage))
    truncated = tmp_path / "truncated.nemo"
    truncated.write_bytes(tiny_nemo.read_bytes()[: tiny_nemo.stat().st_size // 2])
    with pytest.raises(AsrUnavailable, match=str(truncated)):
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=truncated))
    # A well-formed archive whose weights are damaged: NeMo's own error, on one line.
    broken = tmp_path / "broken.nemo"
    with tarfile.open(tiny_nemo) as src, tarfile.open(broken, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data is not None and member.name.endswith(".ckpt"):
                data = b"\x00" * len(data)
            if data is not None:
                import io

                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member)
    with pytest.raises(AsrUnavailable, match=f"cannot load the NeMo model {broken}: ") as info:
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=broken))
    assert "\n" not in str(info.value)


def test_missing_path_and_missing_file(tmp_path):
    with pytest.raises(AsrUnavailable, match="set CALLSENSE_NEMO_MODEL_PATH"):
        create_asr_engine(Settings(asr_engine="nemo"))
    with pytest.raises(AsrUnavailable, match="no NeMo checkpoint at"):
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=tmp_path / "nope.nemo"))
    not_nemo = tmp_path / "plain.tar"
    with tarfile.open(not_nemo, "w") as tar:
        (tmp_path / "readme.txt").write_text("hello")
        tar.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(AsrUnavailable, match="has no model_config.yaml"):
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=not_nemo))


@pytest.mark.skipif(HAS_NEMO, reason="NeMo is installed here: the missing-extra message cannot be seen")
def test_without_nemo_the_error_names_the_extra(tmp_path):
    fake = tmp_path / "model.nemo"
    with tarfile.open(fake, "w") as tar:
        (tmp_path / "model_config.yaml").write_text("sample_rate: 16000\n")
        tar.add(tmp_path / "model_config.yaml", arcname="model_config.yaml")
    with pytest.raises(AsrUnavailable, match=r"pip install callsense\[nemo\]"):
        create_asr_engine(Settings(asr_engine="nemo", nemo_model_path=fake))
