"""The sentiment job end to end on a slice of MELD: real fine-tuning for a few steps (with
conversation context), a real int8 ONNX export loaded by the serving backend, a run record,
registration, a resume after a crash, and the gate refusing the under-trained result against
the shipped model on the same holdout."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the fine-tuning jobs need the `train` extra (torch)")

from callsense.finetune.datasets import DatasetStore, SplitPlan  # noqa: E402
from callsense.finetune.jobs.sentiment import SentimentJobConfig, run_sentiment_job  # noqa: E402
from callsense.finetune.jobs.trainer import TrainOptions  # noqa: E402
from callsense.finetune.promotion import run_gate  # noqa: E402
from callsense.finetune.registry import ModelRegistry  # noqa: E402
from callsense.finetune.runs import SilentProgress  # noqa: E402

from finetune_helpers import shipped_sentiment_dir, write_meld_slice  # noqa: E402


class CrashAfter(SilentProgress):
    """Stands in for a killed process: raises after `steps` training steps."""

    def __init__(self, steps: int):
        self.left = steps

    def advance(self, n: int = 1, **fields) -> None:
        self.left -= n
        if self.left == 0:
            raise KeyboardInterrupt


@pytest.fixture
def tiny_sentiment(workspace, meld_dir, tmp_path):
    train = write_meld_slice(meld_dir / "train.csv", tmp_path / "train.csv", 8)  # ~70 rows
    test = write_meld_slice(meld_dir / "dev.csv", tmp_path / "dev.csv", 12, start=20)
    return DatasetStore(workspace).build("sentiment", [f"meld:{train}", f"meld:{test}@test"], plan=SplitPlan(0.25, 0.0)).version


def test_sentiment_job_trains_exports_records_resumes_and_is_gated(workspace, tiny_sentiment):
    shipped_sentiment_dir()
    config = SentimentJobConfig(dataset=tiny_sentiment.id, context_turns=2, max_length=40,
                                train=TrainOptions(epochs=2, batch_size=16, max_steps=5, checkpoint_every=1, threads=2))
    with pytest.raises(KeyboardInterrupt):
        run_sentiment_job(workspace, config, progress=CrashAfter(3))
    interrupted = json.loads(next(workspace.runs_dir.glob("sentiment-*/run.json")).read_text())
    assert interrupted["status"] == "failed" and interrupted["epochs"] == [] and interrupted["error"] == "interrupted"

    run = run_sentiment_job(workspace, resume="last")
    assert run["id"] == interrupted["id"] and run["status"] == "done" and run["resumed"]
    assert [e["global_step"] for e in run["epochs"]][-1] == 5, "resumed at step 3, not from scratch"
    assert run["dataset_version"] == tiny_sentiment.id and run["code_version"] and run["hardware"]["cpu_count"]
    assert run["config"]["context_turns"] == 2 and all("dev_macro_f1" in e for e in run["epochs"])

    model_dir = workspace.runs_dir / run["id"] / "model"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["context_turns"] == 2 and manifest["dataset_version"] == tiny_sentiment.id
    assert manifest["pooling"] == "mean" and manifest["hyperparameters"]["class_weights"] == "balanced"
    # the runtime applies the normalisation the training rows had (MELD typography -> ASCII)
    from callsense.finetune.sources import TEXT_NORMALIZATION

    assert manifest["text_normalization"]["applied_in_training"] == TEXT_NORMALIZATION
    assert "callsense data build sentiment" in manifest["rebuild_command"]
    assert "callsense finetune sentiment" in manifest["rebuild_command"] and "--context-turns 2" in manifest["rebuild_command"]
    assert run["failures"][0]["error"] == "interrupted" and run["error"] is None
    dev_int8 = manifest["metrics"]["dev_onnx_int8"]  # the exported model on the split that chose the epoch
    assert dev_int8["n"] == len(tiny_sentiment.rows("dev")) and 0 <= dev_int8["macro_f1"]["value"] <= 1
    assert (model_dir / "checkpoint" / "encoder" / "config.json").is_file() and (model_dir / "checkpoint" / "head.pt").is_file()
    test = run["metrics"]["test"]
    assert test["n"] == len(tiny_sentiment.rows("test")) and test["context_turns"] == 2
    assert 0 <= test["macro_f1"]["low"] <= test["macro_f1"]["value"] <= test["macro_f1"]["high"] <= 1

    # The serving backend loads the exported folder as is (sha256 checked).
    from callsense.nlp.sentiment.onnx_model import OnnxSentimentModel

    scored = OnnxSentimentModel(workspace.settings.model_copy(update={"sentiment_model_dir": model_dir})).score(["great!"])
    assert scored[0].label in ("negative", "neutral", "positive")

    reg = ModelRegistry(workspace)
    cand = reg.get("sentiment")
    assert run["artifacts"]["registry"] == f"sentiment v{cand.version}" and cand.status == "candidate"
    assert cand.run_id == run["id"] and cand.dataset_version == tiny_sentiment.id
    # Five steps on 60 sentences do not beat the shipped model on the held-out conversations.
    d = run_gate(workspace, "sentiment", cand.version)
    assert not d.promoted and d.holdout == f"{tiny_sentiment.id}:test" and d.delta["low"] < 0, d.reason
    assert reg.serving("sentiment").version == 1

    # "from the model in service": v1 is ONNX-only, so the job says to start from the encoder.
    from callsense.finetune.workspace import FinetuneError

    with pytest.raises(FinetuneError, match="ONNX-only"):
        run_sentiment_job(workspace, SentimentJobConfig(dataset=tiny_sentiment.id, init="serving"))


def test_sentence_classifier_pooling_is_what_it_says():
    """`cls` is the BERT pooler over [CLS] (BertForSequenceClassification, the shipped model's
    head); `mean` the masked mean of the token states."""
    from callsense.finetune.jobs.models import SentenceClassifier
    from callsense.finetune.jobs.trainer import packaged_encoder, seed_everything

    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 2307, 102, 0, 0]])
    mask = (ids != 0).long()
    seed_everything(1)
    cls = SentenceClassifier(str(packaged_encoder()), 3, "cls").eval()
    seed_everything(1)
    mean = SentenceClassifier(str(packaged_encoder()), 3, "mean").eval()
    with torch.no_grad():
        out = cls.encoder(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
        assert torch.allclose(cls(ids, mask), cls.classifier(out.pooler_output), atol=1e-6)
        m = mask.unsqueeze(-1).float()
        pooled = (out.last_hidden_state * m).sum(1) / m.sum(1)
        assert torch.allclose(mean(ids, mask), mean.classifier(pooled), atol=1e-5)
    assert torch.equal(cls.classifier.weight, mean.classifier.weight), "the same seed gives the same head"
    assert "pooler" in cls.describe() and "mean" in mean.describe()
