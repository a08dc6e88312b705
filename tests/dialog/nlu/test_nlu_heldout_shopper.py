"""The held-out shopper questions (dialog/nlu/data/heldout_shopper.txt -> heldout_shopper.tsv):
written apart from the templates, never trained on; intent accuracy and slot F1 of the
shipped model alone and as the engine runs it (normalisation, slot checks, small talk), and
the share of questions the assistant answers right. Floors sit a little under the figures
measured when the set was written (see dialog/nlu/data/README.md)."""

from __future__ import annotations

import shutil

import pytest

from callsense.dialog.nlu.data import heldout_shopper as hs
from callsense.dialog.nlu.data import nemo_files
from callsense.dialog.nlu.data.generate_retail import DEFAULT_OUT as DATA_DIR

# measured: model 0.928 / 0.834; as the engine runs it 0.975 / 0.941; answers right 0.981
MIN_MODEL_INTENT, MIN_MODEL_SLOT_F1 = 0.91, 0.81
MIN_INTENT, MIN_SLOT_F1, MIN_ANSWER_RIGHT = 0.96, 0.92, 0.96


def test_the_shipped_files_are_the_source_file_written_out(tmp_path):
    for name in ("dict.intents.csv", "dict.slots.csv"):
        shutil.copy(DATA_DIR / name, tmp_path / name)
    n = hs.write(tmp_path)
    assert n >= 300
    for name in (f"{hs.PREFIX}.tsv", f"{hs.PREFIX}_slots.tsv"):
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), f"{name}: run heldout_shopper write"


def test_the_questions_are_never_trained_on_and_are_shoppers_own():
    split = nemo_files.read_split(DATA_DIR, hs.PREFIX)
    assert len(split.examples) >= 300
    held = {" ".join(ex.words) for ex in split.examples}
    for prefix in ("train", "dev", "test"):
        seen = {" ".join(ex.words) for ex in nemo_files.read_split(DATA_DIR, prefix).examples}
        assert not held & seen, f"held-out questions also in {prefix}.tsv: {sorted(held & seen)[:5]}"
    words = [w for ex in split.examples for w in ex.words]
    for slang in ("tmrw", "sf", "nyc", "gonna", "wether", "r", "u", "pls", "tonite", "wknd"):
        assert slang in words, slang
    texts = [q.text for q in hs.read_source()]
    assert sum(" and " in t or "? " in t or " also " in t for t in texts) >= 10  # several questions at once
    assert {ex.intent for ex in split.examples} == set(nemo_files.read_dict(DATA_DIR / "dict.intents.csv"))


def test_a_malformed_line_names_its_line():
    with pytest.raises(hs.HeldoutFormatError, match=r"heldout_shopper.txt:7: unknown slot type 'place'"):
        hs.parse_line("weather.weather | weather in [paris|place]", 7)
    with pytest.raises(hs.HeldoutFormatError, match=r":3: expected 'INTENT \| text'"):
        hs.parse_line("weather in paris", 3)
    q = hs.parse_line("price_check | how much r [airpods|prod] in [sf|loc]?", 1)
    assert q.text == "how much r airpods in sf?"
    assert q.example.tags == ["O", "O", "O", "B-item.name", "O", "B-location"]


@pytest.fixture(scope="module")
def report():
    return hs.evaluate("embedded")


def test_heldout_scores_of_the_model_and_of_the_nlu_as_the_engine_runs_it(report):
    model, nlu = report["model"], report["understanding"]
    print(f"\nheld-out shopper questions ({report['examples']}): model intent {model['intent_accuracy']:.4f} "
          f"slot F1 {model['slot_f1']:.4f}; as run by the engine intent {nlu['intent_accuracy']:.4f} "
          f"slot F1 {nlu['slot_f1']:.4f}; answers right {report['engine']['answer_right']:.4f}")
    assert model["intent_accuracy"] >= MIN_MODEL_INTENT and model["slot_f1"] >= MIN_MODEL_SLOT_F1
    assert nlu["intent_accuracy"] >= MIN_INTENT and nlu["slot_f1"] >= MIN_SLOT_F1
    # the layer helps where the issue saw it fail: days ("tmrw"), places ("sf"), brands
    assert nlu["per_slot_type"]["time.period_of_time"]["f1"] > model["per_slot_type"]["time.period_of_time"]["f1"]
    assert nlu["per_slot_type"]["item.name"]["f1"] > model["per_slot_type"]["item.name"]["f1"]
    assert min(nlu["per_intent_accuracy"].values()) >= 0.8, nlu["per_intent_accuracy"]


def test_heldout_answers_through_the_engine(report):
    engine = report["engine"]
    assert engine["questions"] >= 300
    assert engine["answer_right"] >= MIN_ANSWER_RIGHT, engine["wrong"]
