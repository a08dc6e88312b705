"""The retail assistant's NeMo intent/slot files: they follow the format and labels.py, come
from the generator unchanged, and the held-out test split shares no sentence and no entity
value with the training split."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from callsense.dialog.nlu import labels
from callsense.dialog.nlu.data import nemo_files, retail_test_templates, retail_train_templates
from callsense.dialog.nlu.data.generate_retail import DEFAULT_OUT as DATA_DIR
from callsense.dialog.nlu.data.generate_retail import ENTITY_POOLS, TemplateError, expand, fill, generate

FILES = ("dict.intents.csv", "dict.slots.csv", "train.tsv", "train_slots.tsv", "dev.tsv", "dev_slots.tsv",
         "test.tsv", "test_slots.tsv")


@pytest.fixture(scope="module")
def splits():
    return nemo_files.read_split(DATA_DIR, "train"), nemo_files.read_split(DATA_DIR, "test")


def test_dictionaries_are_the_labels_of_labels_py():
    assert nemo_files.read_dict(DATA_DIR / "dict.intents.csv") == labels.TRAINING_INTENTS
    slots = nemo_files.read_dict(DATA_DIR / "dict.slots.csv")
    assert slots == labels.SLOT_LABELS
    assert len(slots) == 53 and slots[52] == "O"


def test_files_follow_the_nemo_format():
    lines = (DATA_DIR / "train.tsv").read_text().splitlines()
    assert lines[0] == "sentence\tlabel"
    sentence, label = lines[1].split("\t")
    slot_line = (DATA_DIR / "train_slots.tsv").read_text().splitlines()[0]
    assert len(slot_line.split()) == len(sentence.split())
    assert int(label) < len(labels.TRAINING_INTENTS)
    assert all(0 <= int(i) < 53 for i in slot_line.split())


def test_every_intent_is_in_both_splits(splits):
    train, test = splits
    assert {ex.intent for ex in train.examples} == set(labels.TRAINING_INTENTS)
    assert {ex.intent for ex in test.examples} == set(labels.TRAINING_INTENTS)
    assert len(train.examples) >= 3000 and len(test.examples) >= 500


def test_no_test_sentence_is_in_the_training_data(splits):
    train, test = splits
    train_sentences = {" ".join(ex.words) for ex in train.examples}
    leaked = [" ".join(ex.words) for ex in test.examples if " ".join(ex.words) in train_sentences]
    assert leaked == []


def test_test_entity_values_are_never_training_values(splits):
    train_values = {labels.normalize(v) for p in ENTITY_POOLS for v in retail_train_templates.VALUES[p]}
    test_values = {labels.normalize(v) for p in ENTITY_POOLS for v in retail_test_templates.VALUES[p]}
    assert train_values.isdisjoint(test_values)
    # and in the files themselves: no location span of the test split occurs as a training span
    train, test = splits

    def location_spans(split):
        return {" ".join(ex.words[s:e]) for ex in split.examples for s, e, t in nemo_files.spans(ex.tags) if t == "location"}

    assert location_spans(train).isdisjoint(location_spans(test))


def test_test_templates_are_not_training_templates():
    for intent, templates in retail_test_templates.TEMPLATES.items():
        assert not set(templates) & set(retail_train_templates.TEMPLATES[intent]), intent


def test_shipped_files_are_exactly_what_the_generator_writes(tmp_path):
    provenance = json.loads((DATA_DIR / "provenance.json").read_text())
    generate(tmp_path, seed=provenance["seed"])
    for name in FILES:
        assert filecmp.cmp(DATA_DIR / name, tmp_path / name, shallow=False), f"{name} differs from the generator's output"
        assert provenance["files"][name] == nemo_files.sha256_file(DATA_DIR / name)


def test_template_expansion_and_tagging():
    import random

    tokens, tags = fill("will it rain {time} in {location}", {"time": ["next week"], "location": ["Los Angeles"]},
                        random.Random(0))
    assert tokens == ["will", "it", "rain", "next", "week", "in", "los", "angeles"]
    assert tags == ["O", "O", "O", "B-time.period_of_time", "I-time.period_of_time", "O", "B-location", "I-location"]
    tokens, _ = fill("how much is a {item}", {"item": ["air fryer"]}, random.Random(0))
    assert tokens[:4] == ["how", "much", "is", "an"]
    seen = {expand("(a|b) [c]", random.Random(i)) for i in range(50)}
    assert seen == {"a ", "b ", "a c", "b c"}
    with pytest.raises(TemplateError):
        fill("{nosuchplaceholder}", {}, random.Random(0))


def test_snips_style_folders_convert_to_nemo_files(tmp_path):
    src = tmp_path / "snips"
    for split, rows in {"train": [("play some jazz", "O O B-genre", "PlayMusic"),
                                  ("weather in paris", "O O B-city", "GetWeather")],
                        "dev": [("rain in new york", "O O B-city I-city", "GetWeather")]}.items():
        (src / split).mkdir(parents=True)
        (src / split / "seq.in").write_text("".join(r[0] + "\n" for r in rows))
        (src / split / "seq.out").write_text("".join(r[1] + "\n" for r in rows))
        (src / split / "label").write_text("".join(r[2] + "\n" for r in rows))
    counts = nemo_files.convert_seq_folder(src, tmp_path / "nemo")
    assert counts == {"train": 2, "dev": 1}
    dev = nemo_files.read_split(tmp_path / "nemo", "dev")
    assert dev.slots[-1] == "O"
    assert dev.examples[0].words == ["rain", "in", "new", "york"]
    assert dev.examples[0].tags == ["O", "O", "B-city", "I-city"]
    assert dev.examples[0].intent == "GetWeather"


def test_a_broken_slots_file_is_reported_with_file_and_line(tmp_path):
    for name in FILES:
        (tmp_path / name).write_bytes((DATA_DIR / name).read_bytes())
    lines = (tmp_path / "test_slots.tsv").read_text().splitlines()
    lines[2] = lines[2] + " 52"
    (tmp_path / "test_slots.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(nemo_files.NemoFormatError, match=r"test_slots\.tsv:3: "):
        nemo_files.read_split(Path(tmp_path), "test")
