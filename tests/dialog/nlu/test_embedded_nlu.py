"""The embedded joint intent/slot NLU: the shipped model loads (sha256 checked), refuses a
tampered copy, and understands WP-7328's questions."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from callsense.core.settings import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluResult, NluUnavailable, create_nlu, nlu_backends
from callsense.dialog.nlu.embedded import EmbeddedNlu
from callsense.nlp.intent_slot.model import DEFAULT_MODEL_DIR, repair_bio


@pytest.fixture(scope="module")
def nlu() -> EmbeddedNlu:
    return EmbeddedNlu(Settings())


# ------------------------------------------------------------------------------ the shipped model


def test_registry_and_create_nlu_give_the_embedded_backend(nlu):
    assert nlu_backends.get("embedded") is EmbeddedNlu
    assert isinstance(create_nlu(Settings(nlu_backend="embedded")), EmbeddedNlu)


def test_shipped_model_is_small_int8_and_matches_its_manifest():
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    model = DEFAULT_MODEL_DIR / "model.onnx"
    assert model.stat().st_size <= 25 * 1024 * 1024
    assert model.stat().st_size == manifest["model_size_bytes"]
    assert hashlib.sha256(model.read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["onnx"]["quantization"]["weight_type"] == "QInt8"
    assert manifest["onnx"]["quantization"]["fp32_size_bytes"] > 3 * model.stat().st_size
    label_file = json.loads((DEFAULT_MODEL_DIR / "labels.json").read_text())
    assert label_file["intents"] == labels.TRAINING_INTENTS
    assert label_file["slots"] == labels.SLOT_LABELS
    assert "rebuild_command" in manifest and "build_model.py" in manifest["rebuild_command"]
    assert manifest["training_data"]["files_sha256"]["train.tsv"]


def test_a_tampered_model_is_refused_with_a_clear_error(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(NluUnavailable, match=r"refusing NLU model .*sha256 .* differs from manifest\.json"):
        EmbeddedNlu(Settings(), model_dir=copy)


def test_a_folder_without_manifest_is_refused(tmp_path):
    shutil.copy(DEFAULT_MODEL_DIR / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(NluUnavailable, match="manifest.json missing"):
        EmbeddedNlu(Settings(), model_dir=tmp_path)


def test_model_dir_comes_from_settings(tmp_path):
    class WithModelDir(Settings):
        nlu_model_dir: Path | None = None

    with pytest.raises(NluUnavailable, match=str(tmp_path)):
        EmbeddedNlu(WithModelDir(nlu_model_dir=tmp_path))


# ------------------------------------------------------------------------------ WP-7328 questions


def test_will_it_rain_next_week_in_los_angeles(nlu):
    r = nlu.parse("will it rain next week in Los Angeles?")
    assert r.intent == "weather.rainfall_yes_no"
    assert r.slots["location"] == "los angeles"
    assert r.slots["time"] == "next week"
    assert r.confidence > 0.5
    assert r.tokens == ["will", "it", "rain", "next", "week", "in", "los", "angeles"]
    assert r.tags[-2:] == ["B-location", "I-location"]


def test_where_can_i_get_the_best_pasta(nlu):
    r = nlu.parse("where can i get the best pasta")
    assert r.intent == "store_location"
    assert r.slots.get("item") == "pasta"
    assert r.slots.get("sort") == "rating.high"


def test_how_much_is_laptop_memory(nlu):
    r = nlu.parse("how much is laptop memory")
    assert r.intent == "price_check"
    assert r.slots["item"] == "laptop memory"


@pytest.mark.parametrize(
    "text, intent, slots",
    [
        ("Where can I get Thai food in San Francisco?", "store_location", {"store_type": "thai food", "location": "san francisco"}),
        ("find me the highest-rated sushi restaurant in seattle", "store_location",
         {"sort": "rating.high", "store_type": "sushi restaurant", "location": "seattle"}),
        ("show me jeans with the lowest price", "price_check", {"item": "jeans", "sort": "cost.low"}),
        ("do you have headphones in stock in boston", "inventory_check", {"item": "headphones", "location": "boston"}),
        ("what's the weather like in chicago tomorrow", "weather.weather", {"location": "chicago", "time": "tomorrow"}),
        ("how hot is it in phoenix", "weather.temperature", {"location": "phoenix"}),
        ("will it snow in denver this weekend", "weather.snow_yes_no", {"location": "denver", "time": "this weekend"}),
        ("how humid is it in miami", "weather.humidity", {"location": "miami"}),
        ("is it going to be sunny tomorrow", "weather.sunny", {"time": "tomorrow"}),
    ],
)
def test_retail_and_weather_questions(nlu, text, intent, slots):
    r = nlu.parse(text)
    assert r.intent == intent, (r.intent, r.confidence)
    for key, value in slots.items():
        assert r.slots.get(key) == value, r.slots


def test_a_bare_place_answer_fills_the_location_slot(nlu):
    """The answer to "for which location?" (an input_user state) carries the slot."""
    r = nlu.parse("Los Angeles")
    assert r.slots == {"location": "los angeles"}


@pytest.mark.parametrize("text", ["tell me a joke", "what's your name", "i want a refund"])
def test_out_of_domain_is_no_match(nlu, text):
    assert nlu.parse(text).intent == NO_MATCH


# ------------------------------------------------------------------------------ contract details


def test_confidence_below_the_threshold_gives_no_match_but_keeps_slots():
    strict = EmbeddedNlu(Settings(), confidence_threshold=1.01)
    r = strict.parse("will it rain next week in los angeles")
    assert r.intent == NO_MATCH
    assert 0.5 < r.confidence <= 1.0
    assert r.slots["location"] == "los angeles"


def test_the_engine_floor_nlu_min_confidence_applies():
    assert EmbeddedNlu(Settings(nlu_min_confidence=0.9)).confidence_threshold == 0.9
    assert EmbeddedNlu(Settings()).confidence_threshold == 0.5


@pytest.mark.parametrize("text", ["", "   ", "?!...", "\U0001F600\U0001F600", "\x00\x01",
                                  "'; DROP TABLE stores; --", "{{location}} {% for x in y %}",
                                  "é" * 5000, "rain " * 20000, "Ünïcödé wéathér in Zürich?"])
def test_any_input_gets_a_result_and_raises_nothing(nlu, text):
    r = nlu.parse(text)
    assert isinstance(r, NluResult)
    assert r.intent in labels.FLOW_INTENTS
    assert 0.0 <= r.confidence <= 1.0
    assert len(r.tokens) == len(r.tags)
    assert not labels.check_tags(r.tags)


def test_empty_input_is_no_match_with_zero_confidence(nlu):
    assert nlu.parse("  ") == NluResult(NO_MATCH, 0.0)


def test_parse_many_equals_parse(nlu):
    texts = ["how much is laptop memory", "", "will it snow in boston", "tell me a joke"]
    many = nlu.parse_many(texts)
    for text, r in zip(texts, many):
        one = nlu.parse(text)
        assert (one.intent, one.slots, one.tags) == (r.intent, r.slots, r.tags)
        # int8 dynamic quantization scales activations per batch, so padding moves the last digits
        assert one.confidence == pytest.approx(r.confidence, abs=2e-3)


def test_repair_bio_turns_orphan_inside_tags_into_beginnings():
    assert repair_bio(["O", "I-location", "I-location", "B-item.type", "I-location"]) == \
        ["O", "B-location", "I-location", "B-item.type", "B-location"]
