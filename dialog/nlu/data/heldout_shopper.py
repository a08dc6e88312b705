"""The held-out shopper questions (heldout_shopper.txt): NeMo files and their evaluation.

`heldout_shopper.txt` holds questions written by hand the way shoppers type (typos, slang,
"tmrw", "sf", brands, several questions at once), apart from the training and test
templates, with their intent and slot spans. Nothing trains on them (see README.md).

    python -m callsense.dialog.nlu.data.heldout_shopper write      # the .txt -> heldout_shopper.tsv + _slots.tsv
    python -m callsense.dialog.nlu.data.heldout_shopper evaluate [--json OUT] [--nlu embedded|keywords]

`evaluate` scores, with `nemo_files.score` (the evaluation of test_nlu_heldout_eval.py):
1. the model alone on the NeMo words (as `callsense eval intent ... --prefix heldout_shopper`);
2. the NLU as the engine runs it: normalisation, slot checks and small talk around it
   (`understanding.Understanding`); its tags are brought back onto the words as written;
3. the answer through the engine: each question in a new session of the shipped assistant;
   right when it is routed where the gold intent is routed (unknown: not answered as a
   question) and the context holds the gold place, day, item and store (compared as the
   providers read them: the same city, the same days, the same catalog items or store type).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from callsense.core.settings import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.data import nemo_files
from callsense.dialog.nlu.data.generate_retail import DEFAULT_OUT

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "heldout_shopper.txt"
PREFIX = "heldout_shopper"
#: The day the engine evaluation runs on (day 0 of the offline forecasts; a Monday).
EVAL_DAY = date(2025, 6, 2)

SLOT_ALIASES = {
    "loc": "location", "time": "time.period_of_time", "item": "item.type", "prod": "item.name",
    "store": "store.type", "name": "store.name", "cheap": "cost.low", "pricey": "cost.high",
    "best": "rating.high", "worst": "rating.low", "color": "item.color", "size": "item.size",
    "qty": "item.quantity",
}
_SPAN = re.compile(r"\[([^\[\]|]+)\|([^\[\]|]+)\]")


class HeldoutFormatError(ValueError):
    pass


@dataclass
class Question:
    line: int
    text: str  # as a shopper typed it (the brackets removed)
    example: nemo_files.NemoExample


def parse_line(line: str, number: int = 0) -> Question:
    """`INTENT | text with [words|slot] spans` -> the question and its NeMo example."""
    intent, sep, body = line.partition(" | ")
    intent = intent.strip()
    if not sep or intent not in labels.TRAINING_INTENTS:
        raise HeldoutFormatError(f"{SOURCE.name}:{number}: expected 'INTENT | text' with a training intent, "
                                 f"got {line!r}")
    words: list[str] = []
    tags: list[str] = []
    text_parts: list[str] = []
    pos = 0
    for m in _SPAN.finditer(body):
        before = body[pos:m.start()]
        text_parts.append(before)
        for w in labels.tokenize(before):
            words.append(w)
            tags.append(labels.OUTSIDE)
        span_words = labels.tokenize(m.group(1))
        slot = SLOT_ALIASES.get(m.group(2).strip(), m.group(2).strip())
        if slot not in labels.SLOT_TYPES or not span_words:
            raise HeldoutFormatError(f"{SOURCE.name}:{number}: unknown slot type {m.group(2)!r} or empty span")
        for i, w in enumerate(span_words):
            words.append(w)
            tags.append(("B-" if i == 0 else "I-") + slot)
        text_parts.append(m.group(1))
        pos = m.end()
    text_parts.append(body[pos:])
    for w in labels.tokenize(body[pos:]):
        words.append(w)
        tags.append(labels.OUTSIDE)
    text = "".join(text_parts).strip()
    if "[" in text or "]" in text or not words:
        raise HeldoutFormatError(f"{SOURCE.name}:{number}: unbalanced span in {line!r}")
    return Question(number, text, nemo_files.NemoExample(words, intent, tags))


def read_source(path: Path = SOURCE) -> list[Question]:
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(parse_line(line.strip(), number))
    return out


def write(out: Path = DEFAULT_OUT, source: Path = SOURCE) -> int:
    """heldout_shopper.tsv + heldout_shopper_slots.tsv next to the training files (their dictionaries)."""
    questions = read_source(source)
    intents = nemo_files.read_dict(out / "dict.intents.csv")
    slots = nemo_files.read_dict(out / "dict.slots.csv")
    nemo_files.write_split(out, PREFIX, [q.example for q in questions], intents, slots)
    return len(questions)


# ---------------------------------------------------------------------------- evaluation


def score_model(examples: list[nemo_files.NemoExample], model) -> dict:
    """The joint model alone on the NeMo words (training labels)."""
    from callsense.dialog.nlu.embedded import repair_bio

    predictions = []
    for s in range(0, len(examples), 64):
        predictions += model.predict([ex.words for ex in examples[s:s + 64]])
    return nemo_files.score(examples, [p.intent for p in predictions], [repair_bio(p.tags) for p in predictions])


def understand_words(understanding, words: list[str]):
    """(training intent, tags over `words`) of the words as the engine's NLU reads them."""
    from callsense.dialog.nlu.normalize import normalize_words, project_tags

    result = understanding.parse(" ".join(words))
    normalized, origin = normalize_words(words)
    tags = list(result.tags)
    if list(result.tokens) != normalized or len(tags) != len(normalized):  # a backend that tokenizes otherwise
        tags = labels.tags_from_slots(normalized, result.slots)
    return labels.to_training_intent(result.intent), project_tags(len(words), origin, tags)


def score_understanding(examples: list[nemo_files.NemoExample], understanding) -> dict:
    intents, tags = [], []
    for ex in examples:
        intent, t = understand_words(understanding, ex.words)
        intents.append(intent)
        tags.append(t)
    return nemo_files.score(examples, intents, tags)


class AnswerJudge:
    """Is the engine's turn the right answer to a held-out question?"""

    #: The slots each kind of question's answer depends on.
    DOMAIN = {
        "weather": ("location", "time.period_of_time"),
        "price_check": ("location", "item.type", "item.name"),
        "inventory_check": ("location", "item.type", "item.name"),
        "store_location": ("location", "time.period_of_time", "item.type", "item.name", "store.type"),
    }

    def __init__(self, flows):
        from callsense.dialog.fulfillment.catalog import item_vocabulary, load_catalog_data
        from callsense.dialog.fulfillment.weather import FORECASTS_FILE, _forecast_table

        self.routes = flows.intent_transitions
        self.items = item_vocabulary()
        self.catalog = load_catalog_data()
        self.forecast_places = _forecast_table(str(FORECASTS_FILE))

    def city(self, text: str, *, gold: bool = False) -> str:
        """A place as the providers resolve it (`gold`: as written, normalised first)."""
        from callsense.dialog.fulfillment.weather import _place_key
        from callsense.dialog.nlu.normalize import normalize_text

        key = _place_key(normalize_text(str(text)) if gold else str(text))
        found = self.forecast_places.get(key)
        if found:
            return found[0].lower()
        if key in self.catalog.city_aliases:
            return self.catalog.city_aliases[key].lower()
        for phrase, city in self.catalog.city_aliases.items():  # "downtown austin"
            if len(phrase) > 3 and re.search(rf"\b{re.escape(phrase)}\b", key):
                return city.lower()
        return key

    def days(self, text: str | None, *, gold: bool = False) -> list[date]:
        from callsense.dialog.fulfillment.weather import resolve_period
        from callsense.dialog.nlu.normalize import normalize_text

        return resolve_period(normalize_text(text) if text and gold else text, EVAL_DAY, 7).days

    def store_kind(self, text: str | None):
        from callsense.dialog.fulfillment.catalog import phrase_key

        if not text:
            return None
        key = phrase_key(text)
        for phrase, kind in self.catalog.store_type_phrases.items():
            if phrase == key or re.search(rf"\b{re.escape(phrase)}\b", key):
                return kind
        return None

    def same_item(self, gold: str, ctx: dict) -> bool:
        from callsense.dialog.nlu.normalize import normalize_text

        for key in ("item", "store_type"):
            value = ctx.get(key)
            if not value:
                continue
            a, b = self.items.match(normalize_text(gold)), self.items.match(str(value))
            if a and a == b or " ".join(labels.tokenize(normalize_text(gold))) == " ".join(labels.tokenize(str(value))):
                return True
            if self.store_kind(gold) and self.store_kind(gold) == self.store_kind(str(value)):
                return True
        return False

    def judge(self, ex: nemo_files.NemoExample, reply) -> tuple[bool, str]:
        routed = reply.follow_up or reply.intent or labels.NO_MATCH
        gold_flow = labels.to_flow_intent(ex.intent)
        if ex.intent == "unknown":
            ok = labels.to_training_intent(routed) == "unknown"
            return ok, "" if ok else f"answered as {routed}"
        if self.routes.get(routed) != self.routes.get(gold_flow):
            return False, f"routed as {routed}, not {gold_flow}"
        if gold_flow.startswith("navigation."):
            return True, ""  # one answer ("I can't give directions yet") whatever the place
        ctx = reply.context
        for s, e, kind in nemo_files.spans(ex.tags):
            if kind not in self.DOMAIN.get(gold_flow.split(".")[0], self.DOMAIN["store_location"]):
                continue  # a slot of another question of the same message ("... and how much are airpods")
            gold = " ".join(ex.words[s:e])
            if kind == "location":
                if not ctx.get("location") or self.city(ctx["location"]) != self.city(gold, gold=True):
                    return False, f"location {ctx.get('location')!r}, not {gold!r}"
            elif kind == "time.period_of_time":
                if self.days(ctx.get("time")) != self.days(gold, gold=True):
                    return False, f"time {ctx.get('time')!r}, not {gold!r}"
            elif kind in ("item.type", "item.name", "store.type"):
                if not self.same_item(gold, ctx):
                    return False, f"item/store {ctx.get('item') or ctx.get('store_type')!r}, not {gold!r}"
        return True, ""


def score_answers(questions: list[Question], nlu, flows_dir: Path | None = None) -> dict:
    """Each question in a new session of the assistant (offline providers, EVAL_DAY)."""
    from callsense.dialog.assistant import Assistant

    with tempfile.TemporaryDirectory(prefix="callsense-heldout-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{Path(tmp) / 'h.db'}")
        assistant = Assistant(settings, flows=flows_dir, nlu=nlu, seed=0, today=lambda: EVAL_DAY)
        judge = AnswerJudge(assistant.flows)
        right = 0
        per_intent: dict[str, list[int]] = {}
        wrong: list[dict] = []
        latencies = []
        try:
            for n, q in enumerate(questions):
                t0 = time.perf_counter()
                reply = assistant.reply(f"heldout-{n}", q.text)
                latencies.append((time.perf_counter() - t0) * 1000)
                ok, why = judge.judge(q.example, reply)
                right += ok
                per_intent.setdefault(q.example.intent, [0, 0])
                per_intent[q.example.intent][0] += ok
                per_intent[q.example.intent][1] += 1
                if not ok:
                    wrong.append({"line": q.line, "text": q.text, "intent": q.example.intent, "why": why,
                                  "reply": reply.text[-160:]})
        finally:
            assistant.close()
            assistant.db.dispose()
    return {"questions": len(questions), "answer_right": round(right / max(len(questions), 1), 4),
            "per_intent_answer_right": {k: round(v[0] / v[1], 4) for k, v in sorted(per_intent.items())},
            "wrong": wrong}


def evaluate(nlu_name: str = "embedded") -> dict:
    from callsense.dialog.flows import RETAIL_ASSISTANT_DIR, load_flows
    from callsense.dialog.nlu.base import nlu_backends
    from callsense.dialog.nlu.understanding import Understanding

    questions = read_source()
    split = nemo_files.read_split(DEFAULT_OUT, PREFIX)
    if [ex.words for ex in split.examples] != [q.example.words for q in questions]:
        raise HeldoutFormatError(f"{PREFIX}.tsv is not heldout_shopper.txt's: run `... heldout_shopper write`")
    settings = Settings(nlu_backend=nlu_name)
    backend = nlu_backends.get(nlu_name)(settings)
    flows = load_flows(RETAIL_ASSISTANT_DIR).require()
    report: dict = {"examples": len(split.examples), "nlu": nlu_name}
    if hasattr(backend, "model"):
        report["model"] = score_model(split.examples, backend.model)
        report["model_id"] = backend.model.model_id
    understanding = Understanding(backend, intents=set(flows.intent_transitions))
    report["understanding"] = score_understanding(split.examples, understanding)
    report["engine"] = score_answers(questions, backend)
    return report


def _print(report: dict) -> None:
    print(f"held-out shopper questions: {report['examples']} (NLU {report['nlu']}"
          + (f", model {report['model_id']})" if "model_id" in report else ")"))
    parts = [(k, report[k]) for k in ("model", "understanding") if k in report]
    for name, r in parts:
        print(f"  {name:13s} intent accuracy {r['intent_accuracy']:.4f}   slot F1 {r['slot_f1']:.4f} "
              f"(P {r['slot_precision']:.4f} R {r['slot_recall']:.4f})")
    print(f"  {'engine':13s} answer right {report['engine']['answer_right']:.4f}")
    print("\nper intent: " + "  ".join(f"[{n}]" for n, _ in parts) + "  [answer right]")
    intents = sorted(report["engine"]["per_intent_answer_right"])
    for intent in intents:
        cells = [f"{r['per_intent_accuracy'].get(intent, float('nan')):.3f}" for _, r in parts]
        print(f"  {intent:32s} " + "  ".join(f"{c:>7s}" for c in cells)
              + f"  {report['engine']['per_intent_answer_right'][intent]:>7.3f}")
    print("\nper slot type (F1 / gold spans): " + "  ".join(f"[{n}]" for n, _ in parts))
    kinds = sorted({k for _, r in parts for k in r["per_slot_type"]})
    for kind in kinds:
        cells = []
        for _, r in parts:
            v = r["per_slot_type"].get(kind)
            cells.append(f"{v['f1']:.3f}/{v['gold']}" if v else "-")
        print(f"  {kind:24s} " + "  ".join(f"{c:>10s}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="write heldout_shopper.tsv and heldout_shopper_slots.tsv from the .txt")
    ev = sub.add_parser("evaluate", help="score the NLU and the engine on the held-out questions")
    ev.add_argument("--nlu", default="embedded", help="NLU backend (default: embedded)")
    ev.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    args = p.parse_args(argv)
    if args.command == "write":
        n = write()
        print(f"wrote {DEFAULT_OUT / (PREFIX + '.tsv')} and {PREFIX}_slots.tsv: {n} questions")
        return 0
    report = evaluate(args.nlu)
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
