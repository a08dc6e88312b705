"""Write the retail assistant's NLU training data in the NeMo intent/slot format.

Training examples come from `retail_train_templates.py`, the held-out test examples from
`retail_test_templates.py` (other sentence patterns, other entity values). A small `dev` split
from the training templates (sentences not in train) lets the build script watch training
converge without touching the test split. Labels and
tokenization come from `callsense.dialog.nlu.labels`, the one mapping between flow labels and
training labels, so `dict.intents.csv` / `dict.slots.csv` are exactly its TRAINING_INTENTS /
SLOT_LABELS.

    python -m callsense.dialog.nlu.data.generate_retail            # -> dialog/nlu/data/retail_assistant/

The output is deterministic for a given seed. Besides the NeMo files it writes
`provenance.json` (counts per intent and split, the template files' sha256, the command).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

from callsense.dialog.nlu import labels
from callsense.dialog.nlu.data import retail_test_templates, retail_train_templates
from callsense.dialog.nlu.data.nemo_files import NemoExample, sha256_file, write_dicts, write_split

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "retail_assistant"

#: Template placeholder -> the slot type its value is tagged with.
PLACEHOLDER_SLOT_TYPES: dict[str, str] = {
    "location": "location",
    "time": "time.period_of_time",
    "item": "item.type",
    "food": "item.type",
    "product": "item.name",
    "store": "store.type",
    "cuisine": "store.type",
    "store_name": "store.name",
    "rating_high": "rating.high",
    "rating_low": "rating.low",
    "rating_avg": "rating.average",
    "cost_low": "cost.low",
    "cost_low_phrase": "cost.low",
    "cost_high": "cost.high",
    "cost_avg": "cost.average",
    "color": "item.color",
    "size": "item.size",
    "quantity": "item.quantity",
}

#: Open-class pools whose train and test values must not share a single value.
ENTITY_POOLS = ("location", "time", "item", "food", "product", "store", "cuisine", "store_name")

#: Examples per intent (before de-duplication caps them at what the templates can produce).
TRAIN_PER_INTENT = 220
TEST_PER_INTENT = 40
INTENT_SHARE = {"navigation": 0.5, "unknown": 1.4, "price_check": 1.5, "inventory_check": 1.3, "find_the_store": 1.8}

_ALTERNATIVES = re.compile(r"\(([^()\[\]]*)\)")
_OPTIONAL = re.compile(r"\[([^()\[\]]*)\]")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_VOWEL = set("aeiou")


class TemplateError(ValueError):
    pass


def expand(template: str, rng: random.Random) -> str:
    """Resolve `(a|b)` and `[opt]` groups, innermost first."""
    text = template
    while True:
        m = _ALTERNATIVES.search(text)
        if m:
            text = text[: m.start()] + rng.choice(m.group(1).split("|")) + text[m.end():]
            continue
        m = _OPTIONAL.search(text)
        if m:
            text = text[: m.start()] + (m.group(1) if rng.random() < 0.5 else "") + text[m.end():]
            continue
        if any(c in text for c in "()[]"):
            raise TemplateError(f"unbalanced group in template {template!r}")
        return text


def fill(text: str, values: dict[str, list[str]], rng: random.Random) -> tuple[list[str], list[str]]:
    """Fill `{placeholder}`s; returns (tokens, BIO tags) with labels.tokenize's tokens."""
    tokens: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for i, part in enumerate(_PLACEHOLDER.split(text)):
        if i % 2 == 0:
            tokens += labels.tokenize(part)
            continue
        if part not in PLACEHOLDER_SLOT_TYPES or part not in values:
            raise TemplateError(f"unknown placeholder {{{part}}} in {text!r}")
        value = labels.tokenize(rng.choice(values[part]))
        spans.append((len(tokens), len(tokens) + len(value), PLACEHOLDER_SLOT_TYPES[part]))
        tokens += value
    tags = labels.tags_from_spans(tokens, spans)
    # "a air fryer" -> "an air fryer" (only on untagged template words)
    for j in range(len(tokens) - 1):
        if tags[j] == labels.OUTSIDE and tokens[j] in ("a", "an"):
            tokens[j] = "an" if tokens[j + 1][0] in _VOWEL else "a"
    return tokens, tags


def generate_split(templates: dict[str, list[str]], values: dict[str, list[str]], per_intent: int,
                   seed: int, exclude: set[str] = frozenset()) -> list[NemoExample]:
    """Up to `per_intent` distinct examples per intent (scaled by INTENT_SHARE)."""
    rng = random.Random(seed)
    examples: list[NemoExample] = []
    for intent in labels.TRAINING_INTENTS:
        if intent not in templates:
            raise TemplateError(f"no templates for training intent {intent!r}")
        share = next((v for k, v in INTENT_SHARE.items() if intent.startswith(k)), 1.0)
        target = int(per_intent * share)
        seen: set[str] = set()
        attempts = 0
        while len(seen) < target and attempts < target * 30:
            attempts += 1
            tokens, tags = fill(expand(rng.choice(templates[intent]), rng), values, rng)
            sentence = " ".join(tokens)
            if not tokens or sentence in seen or sentence in exclude:
                continue
            seen.add(sentence)
            bad = labels.check_tags(tags)
            if bad:
                raise TemplateError(f"tags {bad} are not in dict.slots.csv")
            examples.append(NemoExample(tokens, intent, tags))
    rng.shuffle(examples)
    return examples


def check_pools_disjoint() -> None:
    train = {labels.normalize(v) for p in ENTITY_POOLS for v in retail_train_templates.VALUES[p]}
    test = {labels.normalize(v) for p in ENTITY_POOLS for v in retail_test_templates.VALUES[p]}
    shared = sorted(train & test)
    if shared:
        raise TemplateError(f"train and test entity values overlap: {shared}")


def generate(out: Path, seed: int = 1337, train_per_intent: int = TRAIN_PER_INTENT,
             test_per_intent: int = TEST_PER_INTENT) -> dict:
    check_pools_disjoint()
    train = generate_split(retail_train_templates.TEMPLATES, retail_train_templates.VALUES, train_per_intent, seed)
    train_sentences = {" ".join(ex.words) for ex in train}
    test = generate_split(retail_test_templates.TEMPLATES, retail_test_templates.VALUES, test_per_intent,
                          seed + 1, exclude=train_sentences)
    # dev: more sentences from the TRAINING templates and values (in-distribution), for watching
    # training converge without looking at the held-out test split
    dev = generate_split(retail_train_templates.TEMPLATES, retail_train_templates.VALUES, test_per_intent // 2,
                         seed + 2, exclude=train_sentences)
    write_dicts(out, labels.TRAINING_INTENTS, labels.SLOT_LABELS)
    write_split(out, "train", train, labels.TRAINING_INTENTS, labels.SLOT_LABELS)
    write_split(out, "dev", dev, labels.TRAINING_INTENTS, labels.SLOT_LABELS)
    write_split(out, "test", test, labels.TRAINING_INTENTS, labels.SLOT_LABELS)

    def counts(examples: list[NemoExample]) -> dict:
        slot_types = Counter(t[2:] for ex in examples for t in ex.tags if t.startswith("B-"))
        return {"examples": len(examples), "per_intent": dict(sorted(Counter(ex.intent for ex in examples).items())),
                "slot_spans": dict(sorted(slot_types.items()))}

    provenance = {
        "what": "synthetic NLU data for the callsense retail assistant (WP-7328 domains), NeMo intent/slot format",
        "command": f"python -m callsense.dialog.nlu.data.generate_retail --seed {seed} "
                   f"--train-per-intent {train_per_intent} --test-per-intent {test_per_intent}",
        "seed": seed,
        "train": dict(counts(train), templates="retail_train_templates.py",
                      templates_sha256=sha256_file(HERE / "retail_train_templates.py"), seed=seed),
        "dev": dict(counts(dev), templates="retail_train_templates.py", seed=seed + 2,
                    use=("in-distribution check during training (same templates and values as train, "
                         "sentences not in train); never a measure of generalisation")),
        "test": dict(counts(test), templates="retail_test_templates.py",
                     templates_sha256=sha256_file(HERE / "retail_test_templates.py"), seed=seed + 1,
                     held_out=("separate templates and separate entity values (places, items, products, "
                               "foods, stores, cuisines, store names, times); sentences also found in "
                               "train are dropped")),
        "labels": "callsense.dialog.nlu.labels (TRAINING_INTENTS, SLOT_LABELS)",
        "files": {name: sha256_file(out / name) for name in
                  ("dict.intents.csv", "dict.slots.csv", "train.tsv", "train_slots.tsv", "dev.tsv", "dev_slots.tsv",
                   "test.tsv", "test_slots.tsv")},
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--train-per-intent", type=int, default=TRAIN_PER_INTENT)
    p.add_argument("--test-per-intent", type=int, default=TEST_PER_INTENT)
    args = p.parse_args(argv)
    out = Path(args.out)
    prov = generate(out, args.seed, args.train_per_intent, args.test_per_intent)
    print(f"wrote {out}: train {prov['train']['examples']}, dev {prov['dev']['examples']}, "
          f"test {prov['test']['examples']} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
