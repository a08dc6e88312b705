"""The embedded NLU backend: the joint intent + slot model of `callsense.nlp.intent_slot`
(default: the shipped model, or `settings.dialog.nlu_model_dir`). The model predicts training labels
(`find_the_store`, `unknown`, `B-location`, ...); `callsense.dialog.nlu.labels` maps them to
the flow labels and context slots that `NluBackend.parse` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from callsense.core.settings import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluBackend, NluResult, NluUnavailable, nlu_backends
from callsense.nlp.intent_slot.model import DEFAULT_MODEL_DIR, IntentSlotUnavailable, JointIntentSlotModel, repair_bio

#: Words beyond this are not looked at (the tokenizer truncates at max_length sub-words anyway);
#: it keeps a pathological 1 MB input from costing a 1 MB tokenization.
MAX_WORDS = 128


@nlu_backends.register("embedded")
class EmbeddedNlu(NluBackend):
    """`parse(text)` -> flow intent label, confidence (softmax max) and context slots.

    Settings read: `nlu_model_dir` (default: the shipped model), `nlu_confidence_threshold`
    (below it the intent is `nomatch.none`; the engine's `nlu_min_confidence` is a floor on
    top of it) and `cpu_threads`."""

    name = "embedded"

    def __init__(self, settings: Settings | None = None, *, model_dir: Path | str | None = None,
                 confidence_threshold: float | None = None):
        settings = settings if settings is not None else Settings()
        folder = model_dir or settings.dialog.nlu_model_dir or DEFAULT_MODEL_DIR
        threshold = settings.dialog.nlu_confidence_threshold if confidence_threshold is None else float(confidence_threshold)
        self.confidence_threshold = max(threshold, settings.dialog.nlu_min_confidence)
        try:
            self.model = JointIntentSlotModel(Path(folder), threads=settings.cpu_threads)
        except IntentSlotUnavailable as e:
            raise NluUnavailable(str(e)) from None

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def parse(self, text: str) -> NluResult:
        return self.parse_many([text])[0]

    def parse_many(self, texts: Sequence[str]) -> list[NluResult]:
        words = [labels.tokenize(t if isinstance(t, str) else "")[:MAX_WORDS] for t in texts]
        todo = [i for i, w in enumerate(words) if w]
        predictions = dict(zip(todo, self.model.predict([words[i] for i in todo])))
        results = []
        for i in range(len(texts)):
            p = predictions.get(i)
            if p is None:  # nothing to understand (empty, punctuation, emoji only)
                results.append(NluResult(NO_MATCH, 0.0))
                continue
            tags = repair_bio(p.tags)
            intent = labels.to_flow_intent(p.intent)
            if p.confidence < self.confidence_threshold:
                intent = NO_MATCH
            results.append(NluResult(intent, p.confidence, labels.slots_from_tags(p.words, tags), p.words, tags))
        return results


def main(argv: list[str] | None = None) -> int:
    """Single-query check, as in NeMo's workflow: the intent and one tag per word.

        python -m callsense.dialog.nlu.embedded "where can i get the best pasta"
    """
    import argparse

    p = argparse.ArgumentParser(description="Parse queries with the embedded NLU model; print intent, slots and tags.")
    p.add_argument("queries", nargs="+")
    p.add_argument("--model-dir", default=None, help="model folder (default: the shipped model)")
    args = p.parse_args(argv)
    nlu = EmbeddedNlu(Settings(), model_dir=args.model_dir)
    for query in args.queries:
        r = nlu.parse(query)
        print(f"{query!r} -> {r.intent} ({r.confidence:.3f}) {r.slots}")
        print("   " + " ".join(f"{t}/{g}" for t, g in zip(r.tokens, r.tags)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
