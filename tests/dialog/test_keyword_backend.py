"""The rule-based `keywords` NLU backend: WP-7328's questions, intents, slots and tags."""

from __future__ import annotations

import pytest

from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import nlu_backends

CASES = [
    ("what's the weather?", "weather.weather", {}),
    ("Los Angeles", "nomatch.none", {"location": "los angeles"}),
    ("will it rain next week in Los Angeles?", "weather.rainfall_yes_no", {"location": "los angeles", "time": "next week"}),
    ("how much rain will Seattle get this weekend", "weather.rainfall", {"location": "seattle", "time": "this weekend"}),
    ("is it going to snow tomorrow in chicago", "weather.snow_yes_no", {"location": "chicago", "time": "tomorrow"}),
    ("how much snow in Denver", "weather.snow", {"location": "denver"}),
    ("what's the temperature in NYC", "weather.temperature", {"location": "new york"}),
    ("will it be cold in Boston on Friday", "weather.temperature_yes_no", {"location": "boston", "time": "on friday"}),
    ("is it humid in Miami", "weather.humidity_yes_no", {"location": "miami"}),
    ("what's the humidity like", "weather.humidity", {}),
    ("is it sunny in LA", "weather.sunny", {"location": "los angeles"}),
    ("will it be cloudy tomorrow", "weather.cloudy", {"time": "tomorrow"}),
    ("how much is laptop memory", "price_check", {"item": "laptop memory"}),
    ("jeans with the lowest price", "price_check", {"item": "jeans", "sort": "cost.low"}),
    ("how much is a unicorn plushie", "price_check", {"item": "unicorn plushie"}),
    ("nearest Thai food", "store_location", {"store_type": "thai food"}),
    ("the highest-rated sushi restaurant", "store_location", {"store_type": "sushi restaurant", "sort": "rating.high"}),
    ("where is the closest electronics store in Austin", "store_location",
     {"store_type": "electronics store", "location": "austin"}),
    ("do you have airpods in stock in Seattle", "inventory_check", {"item": "airpods", "location": "seattle"}),
    ("give me directions to the nearest sushi place", "navigation.showdirection", {}),
    ("how long will it take to get there", "navigation.geteta", {}),
    ("what's the weather like in Timbuktu", "weather.weather", {"location": "timbuktu"}),
    ("tell me a joke", "nomatch.none", {}),
    ("", "nomatch.none", {}),
]


@pytest.mark.parametrize("text,intent,slots", CASES)
def test_intents_and_slots(keywords_nlu, text, intent, slots):
    result = keywords_nlu.parse(text)
    assert result.intent == intent
    for key, value in slots.items():
        assert result.slots.get(key) == value, result.slots
    assert len(result.tags) == len(result.tokens) == len(labels.tokenize(text))
    assert labels.check_tags(result.tags) == []
    assert labels.slots_from_tags(result.tokens, result.tags).items() >= {
        k: v for k, v in result.slots.items() if k not in ("location", "store_type", "item")}.items()


def test_nara_example_is_tagged_like_the_paper(keywords_nlu):
    result = keywords_nlu.parse("where can i get the best pasta")
    assert result.intent == "store_location"
    assert result.tags[:6] == ["B-interrogative.location", "O", "O", "B-verb", "B-article", "B-rating.high"]
    assert result.tags[6] in ("B-item.type", "B-store.type")


def test_registered_by_name():
    backend = nlu_backends.get("keywords")()
    assert backend.parse("nearest pizza place").intent == "store_location"
