"""The layer around every NLU backend (dialog/nlu/understanding.py, normalize.py): shoppers'
spelling, entity checks, item choice against the catalog, small talk, several questions."""

from __future__ import annotations

from datetime import date

import pytest

from callsense.dialog.fulfillment.catalog import item_vocabulary
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NluBackend, NluResult
from callsense.dialog.nlu.normalize import (looks_like_code, normalize_text, normalize_words, plausible_value,
                                            project_tags)
from callsense.dialog.nlu.understanding import Understanding, asks_opening_hours, small_talk, split_questions


@pytest.mark.parametrize("text,expected", [
    ("is it gonna rain in new york tmrw", "is it going to rain in new york tomorrow"),
    ("whats the wether in seattle", "what's the weather in seattle"),
    ("are the nike shoes avail in SF", "are the nike shoes available in san francisco"),
    ("Is it cold in Gotham tonite?", "Is it cold in Gotham tonight?"),  # capitals and punctuation kept
    ("I wonder whether it rains", "I wonder whether it rains"),  # "whether" is a word of its own ...
    ("hows the whether", "how's the weather"),  # ... except after "the"
    ("austin tx", "austin tx"),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_normalized_words_map_back_to_the_words_written():
    words = ["rain", "in", "sf", "tmrw"]
    out, origin = normalize_words(words)
    assert out == ["rain", "in", "san", "francisco", "tomorrow"] and origin == [0, 1, 2, 2, 3]
    tags = ["O", "O", "B-location", "I-location", "B-time.period_of_time"]
    assert project_tags(len(words), origin, tags) == ["O", "O", "B-location", "B-time.period_of_time"]


@pytest.mark.parametrize("text", ["'; DROP TABLE dialog_turns; --", "{{jarvis_error}}", "1; SELECT * FROM x",
                                  "<script>alert(1)</script>", "${7*7}", "\" OR 1=1 --", "{% for x in y %}"])
def test_code_is_recognised(text):
    assert looks_like_code(text)


@pytest.mark.parametrize("text", ["how much are airpods in Austin?", "where's the nearest store -- in Seattle?",
                                  "tv", "levi's 501", "is it 70 degrees"])
def test_questions_are_not_code(text):
    assert not looks_like_code(text.replace(" -- ", " - "))


@pytest.mark.parametrize("value,ok", [("unicorn plushie", True), ("tv", True), ("1tb ssd", True), ("s", False),
                                      ("laptop drop", False), ("jarvis error", False), ("them", False),
                                      ("a b c d e f g", False), ("{{x}}", False), ("12", False)])
def test_plausible_entity_values(value, ok):
    assert plausible_value(value) is ok


@pytest.mark.parametrize("text,intent", [
    ("hello", "smalltalk.greeting"), ("hi there", "smalltalk.greeting"), ("thanks, goodbye", "smalltalk.goodbye"),
    ("thank you so much", "smalltalk.thanks"), ("what can you do?", "smalltalk.help"), ("help", "smalltalk.help"),
    ("let's start over", "smalltalk.start_over"), ("never mind", "smalltalk.start_over"),
    ("ok bye", "smalltalk.goodbye"),
    ("hello in Seattle", None), ("hi, what's the weather?", None), ("thanks for the jeans", None), ("", None),
])
def test_small_talk(text, intent):
    assert small_talk(labels.tokenize(text)) == intent


def test_several_questions_are_split_and_one_is_not():
    assert split_questions("how much is cheese in sf? and is it in stock") == ["how much is cheese in sf",
                                                                                 "is it in stock"]
    assert split_questions("nearest target to sf and what's the weather there") == ["nearest target to sf",
                                                                                      "what's the weather there"]
    assert split_questions("will it rain in seattle and portland") == ["will it rain in seattle and portland"]
    assert split_questions("jeans and shirts?") == ["jeans and shirts?"]


@pytest.mark.parametrize("text,yes", [("is the pharmacy open tomorrow", True), ("when does it close", True),
                                      ("store hours in austin", True), ("open the map of seattle", False),
                                      ("where is the nearest open store", False)])
def test_opening_hours_questions(text, yes):
    assert asks_opening_hours(labels.tokenize(text)) is yes


def test_the_catalog_knows_brands_and_item_names():
    v = item_vocabulary()
    assert v.match("nike") == ["Nike Pegasus Running Shoes"]
    assert v.match("nike running shoes")[0] == "Nike Pegasus Running Shoes"
    assert v.match("adidas sneakers")[0] == "Adidas Ultraboost Sneakers"  # the brand's item first
    assert v.match("unicorn plushie") == []
    assert v.exact("ray bans") and v.exact("adidas sneakers") and not v.exact("ray")


class Scripted(NluBackend):
    """A backend that answers what the test says (tokens of the normalised text, given tags)."""

    name = "scripted"

    def __init__(self, intent: str, tags: dict[str, str], confidence: float = 0.95):
        self.intent, self.tags, self.confidence = intent, tags, confidence
        self.seen: list[str] = []

    def parse(self, text: str) -> NluResult:
        self.seen.append(text)
        tokens = labels.tokenize(text)
        tags = [self.tags.get(t, "O") for t in tokens]
        tags = [t if not t.startswith("I-") or i and tags[i - 1][2:] == t[2:] else "B-" + t[2:]
                for i, t in enumerate(tags)]
        return NluResult(self.intent, self.confidence, labels.slots_from_tags(tokens, tags), tokens, tags)


ROUTED = {"price_check", "inventory_check", "store_location", "weather.weather", *labels.SMALL_TALK_INTENTS}


def test_the_brand_and_the_item_make_one_item():
    inner = Scripted("inventory_check", {"nike": "B-item.name", "running": "B-item.type", "shoes": "I-item.type",
                                         "san": "B-location", "francisco": "I-location"})
    r = Understanding(inner, intents=ROUTED).parse("are the nike running shoes available at the store in sf")
    assert inner.seen == ["are the nike running shoes available at the store in san francisco"]
    assert r.slots["item"] == "nike running shoes" and r.slots["location"] == "san francisco"
    assert r.tags[2:5] == ["B-item.name", "I-item.name", "I-item.name"]


def test_an_unknown_item_keeps_the_words_of_its_name():
    inner = Scripted("price_check", {"unicorn": "B-item.color", "plushie": "B-item.type", "austin": "B-location"})
    r = Understanding(inner, intents=ROUTED).parse("how much is a unicorn plushie in Austin")
    assert r.slots["item"] == "unicorn plushie" and "item_color" not in r.slots


def test_a_price_word_read_into_a_brand_gives_way_to_the_item():
    inner = Scripted("price_check", {"adidas": "B-cost.high", "sneakers": "B-item.type"})
    r = Understanding(inner, intents=ROUTED).parse("how much are adidas sneakers")
    assert r.slots["item"] == "adidas sneakers" and "sort" not in r.slots


def test_junk_is_no_slot_and_code_is_no_question():
    inner = Scripted("price_check", {"laptop": "B-item.type", "drop": "I-item.type"})
    r = Understanding(inner, intents=ROUTED).parse("how much is a laptop'; DROP TABLE dialog_turns; --")
    assert "item" not in r.slots and r.intent == "nomatch.none"
    assert all(t == "O" for t in r.tags)
    inner = Scripted("price_check", {"s": "B-item.type"})
    assert "item" not in Understanding(inner, intents=ROUTED).parse("how much is s").slots


def test_gazetteers_fill_in_a_day_and_a_known_place():
    inner = Scripted("weather.weather", {"on": "B-time.period_of_time", "north": "B-location"})
    r = Understanding(inner, intents=ROUTED).parse("weather on the north side of seattle tomorrow")
    assert r.slots["location"] == "seattle" and r.slots["time"] == "tomorrow"


def test_small_talk_only_when_the_flows_route_it():
    inner = Scripted("nomatch.none", {}, 0.99)
    assert Understanding(inner, intents=ROUTED).parse("hello").intent == "smalltalk.greeting"
    assert Understanding(inner, intents={"price_check"}).parse("hello").intent == "nomatch.none"


def test_opening_hours_are_a_store_question():
    inner = Scripted("navigation.geteta", {"pharmacy": "B-store.type", "tomorrow": "B-time.period_of_time"}, 0.6)
    r = Understanding(inner, intents=ROUTED).parse("is the pharmacy open tmrw")
    assert r.intent == "store_location" and r.slots == {"store_type": "pharmacy", "time": "tomorrow"}


def test_several_questions_answer_the_first_and_keep_the_rest():
    class ByText(NluBackend):
        def parse(self, text):
            intent = "inventory_check" if "stock" in text and "much" not in text else "price_check"
            tokens = labels.tokenize(text)
            tags = ["B-item.name" if t == "airpods" else "B-location" if t == "austin" else "O" for t in tokens]
            return NluResult(intent, 0.9, labels.slots_from_tags(tokens, tags), tokens, tags)

    r = Understanding(ByText(), intents=ROUTED).parse("how much are airpods and do you have them in stock in Austin?")
    assert r.intent == "price_check" and r.slots == {"item": "airpods", "location": "austin"}
    assert r.extra["also_asked"] == ["do you have them in stock in Austin"]


def test_a_backend_failure_is_not_hidden():
    from callsense.dialog.nlu.base import NluUnavailable

    class Down(NluBackend):
        def parse(self, text):
            raise NluUnavailable("down")

    with pytest.raises(NluUnavailable):
        Understanding(Down()).parse("hello")


def test_store_hours_for_a_day():
    from callsense.dialog.fulfillment.retail import _open_when
    from callsense.dialog.fulfillment.weather import resolve_period

    monday = date(2025, 6, 2)
    assert _open_when("08:00-21:00", resolve_period("tomorrow", monday, 7)) == \
        "tomorrow (Tuesday) it is open 08:00 to 21:00"
    assert _open_when("08:00-21:00", resolve_period("on sunday", monday, 7)) == "on Sunday it is open 08:00 to 21:00"
    assert _open_when("07:00-18:00", resolve_period("tonight", monday, 7)) == \
        "it closes at 18:00, so it is not open tonight"
    assert _open_when("11:00-02:00", resolve_period("tonight", monday, 7)) == "tonight it is open until 02:00"
    assert _open_when("10:00-20:00", resolve_period("this weekend", monday, 7)) == \
        "this weekend it is open 10:00 to 20:00 every day"
