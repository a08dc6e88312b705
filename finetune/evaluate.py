"""Evaluation: score a model on labelled data and return plain dicts of figures (each with
its bootstrap interval) that the reports, the registry and the promotion gate use.

- sentiment: per-class precision/recall/F1, macro-F1, accuracy, confusion matrix
- asr: word error rate (jiwer), for one or several engines on the same clips
- intent: intent accuracy, slot span F1, whole-query accuracy
- pipeline (TR-4910): sentiment from ASR text vs from the reference text of the same sentences
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from callsense.core.settings import Settings
from callsense.finetune.metrics import (
    BootstrapOptions, classification_metrics, intent_slot_metrics, pipeline_sentiment_metrics, wer_metrics,
)
from callsense.finetune.runs import Progress, SilentProgress
from callsense.finetune.workspace import FinetuneError

SENTIMENT_LABELS = ["negative", "neutral", "positive"]


# ------------------------------------------------------------------------------- sentiment


class SentimentPredictor:
    """A sentiment model folder as the pipeline runs it (the `onnx` backend), plus the
    conversation context for models trained with it."""

    def __init__(self, folder: Path | None, settings: Settings):
        from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR
        from callsense.nlp.sentiment.onnx_model import OnnxSentimentModel

        self.folder = Path(folder or settings.sentiment.model_dir or DEFAULT_MODEL_DIR)
        self.model = OnnxSentimentModel(settings.model_copy(update={"sentiment_model_dir": self.folder}))
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.context_turns = int(self.manifest.get("context_turns", 0) or 0)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def predict(self, texts: Sequence[str], contexts: Sequence[list[str]] | None = None, *, use_context: bool = True,
                batch: int = 64, progress: Progress | None = None) -> list[str]:
        progress = progress or SilentProgress()
        progress.start(f"scoring {len(texts)} sentences", len(texts))
        if use_context and self.context_turns and contexts is not None:
            return self._predict_pairs(texts, contexts, batch, progress)
        out = []
        for s in range(0, len(texts), batch):
            chunk = list(texts[s:s + batch])
            out += [sc.label for sc in self.model.score(chunk)]
            progress.advance(len(chunk))
        return out

    def _pair_tokenizer(self):
        """(utterance, context) pairs as the job trained on them: the model's tokenizer.json,
        the longer segment cut first to fit max_length, padded to the longest row (the
        runtime's tokenizer encodes single sentences only)."""
        if getattr(self, "_pairs", None) is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            config = self.folder / "tokenizer_config.json"
            pad = (json.loads(config.read_text()).get("pad_token") if config.is_file() else None) or "[PAD]"
            tok.enable_truncation(max_length=int(self.manifest.get("max_length", 128)), strategy="longest_first")
            tok.enable_padding(pad_id=tok.token_to_id(pad) or 0, pad_token=pad)
            self._pairs = tok
        return self._pairs

    def _predict_pairs(self, texts, contexts, batch, progress) -> list[str]:
        import numpy as np

        from callsense.finetune.jobs.sentiment import build_input

        session, labels = self.model._session, self.model.labels
        tok = self._pair_tokenizer()
        out = []
        for s in range(0, len(texts), batch):
            firsts, seconds = zip(*(build_input(t, c or [], self.context_turns) for t, c in zip(texts[s:s + batch], contexts[s:s + batch])))
            encs = tok.encode_batch([(a, b or "") for a, b in zip(firsts, seconds)])
            enc = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
                   "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
                   "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}
            feed = {k: v for k, v in enc.items() if k in self.model._inputs}
            logits = session.run(None, feed)[0]
            out += [labels[int(i)] for i in logits.argmax(axis=1)]
            progress.advance(len(firsts))
        return out


def evaluate_sentiment_rows(folder: Path | None, rows: list[dict], settings: Settings, opts: BootstrapOptions, *,
                            context_turns: int | None = None, progress: Progress | None = None,
                            predictor: SentimentPredictor | None = None) -> dict:
    predictor = predictor or SentimentPredictor(folder, settings)
    t0 = time.perf_counter()
    use_context = context_turns is None or context_turns > 0
    pred = predictor.predict([r["text"] for r in rows], [r.get("context") or [] for r in rows], use_context=use_context,
                             progress=progress)
    seconds = time.perf_counter() - t0
    rep = classification_metrics([r["label"] for r in rows], pred, SENTIMENT_LABELS, opts)
    rep.update(model_id=predictor.model_id, model_dir=str(predictor.folder), seconds=round(seconds, 2),
               context_turns=predictor.context_turns if use_context else 0)
    return rep


def read_sentiment_csv(path: Path) -> list[dict]:
    from callsense.finetune.sources import SourceSpec, read_meld

    return read_meld(SourceSpec(raw=str(path), type="meld", path=Path(path).resolve(), split=None)).rows


# ------------------------------------------------------------------------------------- asr


@dataclass
class AsrSystem:
    """One way to transcribe: an engine, optionally with boosted words (hotwords)."""

    label: str
    transcribe: Callable  # float32 16 kHz audio -> text
    model_id: str


def asr_system(spec: str, settings: Settings, boosted_words: Sequence[str] = ()) -> AsrSystem:
    """`whisper`, `whisper+boost` (faster-whisper hotwords from the boosted words: the cheap
    alternative to fine-tuning), `nemo:PATH.nemo`, or any registered engine name."""
    from callsense.asr.base import create_asr_engine
    from callsense.finetune.sources import normalize_transcript

    name, _, path = spec.partition(":")
    if name == "whisper+boost":
        from callsense.asr.engines.boostable_whisper import BoostableWhisperEngine, RecognizeOptions

        engine = BoostableWhisperEngine(settings)
        hotwords = RecognizeOptions(boosted=tuple((w, 20.0) for w in boosted_words)).hotwords
        if not hotwords:
            raise FinetuneError("whisper+boost needs --boost WORD (or --boost-file) to compare with")

        def run(audio):
            return normalize_transcript(" ".join(seg.text for seg in engine.transcribe_with(audio, hotwords=hotwords)))

        return AsrSystem(spec, run, engine.model_id + "+hotwords")
    overrides = {"asr_engine": name}
    if name == "nemo" and path:
        overrides["nemo_model_path"] = Path(path)
    engine = create_asr_engine(settings.model_copy(update=overrides))
    def run(audio):
        return normalize_transcript(" ".join(seg.text for seg in engine.transcribe(audio)))

    return AsrSystem(spec, run, engine.model_id)


def evaluate_asr_rows(rows: list[dict], systems: list[AsrSystem], cache, opts: BootstrapOptions,
                      progress: Progress | None = None) -> dict:
    """WER of each system on the same clips (audio read through the decoded-audio cache)."""
    progress = progress or SilentProgress()
    t0 = time.perf_counter()
    audio = []
    progress.start(f"decoding {len(rows)} clips (cache)", len(rows))
    for r in rows:
        audio.append(cache.audio(Path(r["audio"]), r.get("channel"), r.get("offset") or 0.0, r.get("duration")))
        progress.advance()
    decode_s = time.perf_counter() - t0
    out = {"n": len(rows), "audio_s": round(sum(a.size for a in audio) / 16000, 2), "decode_s": round(decode_s, 3),
           "cache": cache.stats.as_dict(), "systems": {}}
    refs = [r["text"] for r in rows]
    for system in systems:
        progress.start(f"transcribing with {system.label}", len(rows))
        hyps, t1 = [], time.perf_counter()
        for a in audio:
            hyps.append(system.transcribe(a))
            progress.advance()
        seconds = time.perf_counter() - t1
        rep = wer_metrics(refs, hyps, opts)
        rep.update(model_id=system.model_id, seconds=round(seconds, 2),
                   rtf=round(seconds / max(1e-9, out["audio_s"]), 4),
                   examples=[{"ref": r, "hyp": h} for r, h, e in zip(refs, hyps, rep["per_utterance_errors"]) if e][:10],
                   hypotheses=hyps)
        out["systems"][system.label] = rep
    return out


def read_asr_manifest(path: Path) -> list[dict]:
    """A NeMo ASR manifest or a ../shared/data/audio-style manifest.jsonl -> rows."""
    from callsense.finetune.sources import SourceSpec, read_audio_manifest, read_nemo_asr

    path = Path(path).resolve()
    first = next((l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()), "{}")
    rec = json.loads(first)
    if "audio_filepath" in rec:
        return read_nemo_asr(SourceSpec(str(path), "nemo-asr", path, None)).rows
    if "audio" in rec:
        return read_audio_manifest(SourceSpec(str(path), "audio-manifest", path, None)).rows
    raise FinetuneError(f"{path}: neither a NeMo manifest (audio_filepath) nor an audio manifest (audio, channel, text)")


# ---------------------------------------------------------------------------------- intent


class IntentSlotPredictor:
    """A joint intent/slot model folder as the assistant runs it (`callsense.dialog.nlu.embedded`)."""

    def __init__(self, folder: Path | None, settings: Settings):
        from callsense.nlp.intent_slot.model import DEFAULT_MODEL_DIR, JointIntentSlotModel

        self.folder = Path(folder or settings.dialog.nlu_model_dir or DEFAULT_MODEL_DIR)
        self.model = JointIntentSlotModel(self.folder, threads=settings.cpu_threads)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def predict(self, words: Sequence[list[str]], batch: int = 64, progress: Progress | None = None):
        from callsense.nlp.intent_slot.model import repair_bio

        progress = progress or SilentProgress()
        progress.start(f"tagging {len(words)} queries", len(words))
        intents, tags = [], []
        for s in range(0, len(words), batch):
            for p in self.model.predict(list(words[s:s + batch])):
                intents.append(p.intent)
                tags.append(repair_bio(p.tags))
            progress.advance(min(batch, len(words) - s))
        return intents, tags


def evaluate_intent_rows(folder: Path | None, rows: list[dict], settings: Settings, opts: BootstrapOptions,
                         progress: Progress | None = None, predictor: IntentSlotPredictor | None = None) -> dict:
    predictor = predictor or IntentSlotPredictor(folder, settings)
    t0 = time.perf_counter()
    intents, tags = predictor.predict([r["words"] for r in rows], progress=progress)
    seconds = time.perf_counter() - t0
    rep = intent_slot_metrics([r["intent"] for r in rows], [r["tags"] for r in rows], intents, tags, opts)
    known = set(predictor.model.intents)
    rep.update(model_id=predictor.model_id, model_dir=str(predictor.folder), seconds=round(seconds, 2),
               unknown_gold_intents=sorted({r["intent"] for r in rows} - known))
    return rep


def read_intent_folder(path: Path, prefix: str) -> list[dict]:
    from callsense.finetune.sources import SourceSpec, read_nemo_intents, read_seq

    path = Path(path).resolve()
    if (path / "seq.in").is_file() or (path / prefix / "seq.in").is_file():
        folder = path if (path / "seq.in").is_file() else path / prefix
        return read_seq(SourceSpec(str(folder), "seq", folder, None)).rows
    target = path / f"{prefix}.tsv" if path.is_dir() else path
    if not target.is_file():
        raise FinetuneError(f"{target} not found (a NeMo folder with {prefix}.tsv/{prefix}_slots.tsv, or a SNIPS seq folder)")
    return read_nemo_intents(SourceSpec(str(target), "nemo", target, None)).rows


# -------------------------------------------------------------------------------- pipeline


def evaluate_pipeline_rows(rows: list[dict], system: AsrSystem, predictor: SentimentPredictor, cache, opts: BootstrapOptions,
                           progress: Progress | None = None) -> dict:
    """TR-4910: for each sentence, sentiment on the reference text and on the ASR text of
    the same audio; agreement, mean difference (-1/0/+1 labels), and the WER behind it."""
    progress = progress or SilentProgress()
    asr = evaluate_asr_rows(rows, [system], cache, opts, progress)
    hyps = asr["systems"][system.label].pop("hypotheses")
    refs = [r["text"] for r in rows]
    ref_labels = predictor.predict(refs, use_context=False, progress=progress)
    asr_labels = predictor.predict([h or "." for h in hyps], use_context=False, progress=progress)
    rep = pipeline_sentiment_metrics(ref_labels, asr_labels, opts)
    rep.update(asr=asr["systems"][system.label], asr_model=system.model_id, sentiment_model=predictor.model_id,
               sentences=[{"reference": r, "asr": h, "reference_sentiment": a, "asr_sentiment": b}
                          for r, h, a, b in zip(refs, hyps, ref_labels, asr_labels)])
    gold = [r.get("sentiment") for r in rows]
    if all(g in SENTIMENT_LABELS for g in gold) and gold:
        rep["vs_human_labels"] = {"reference_text": classification_metrics(gold, ref_labels, SENTIMENT_LABELS, opts)["macro_f1"],
                                  "asr_text": classification_metrics(gold, asr_labels, SENTIMENT_LABELS, opts)["macro_f1"]}
    return rep
