"""`keywords`: a deterministic rule-based NLU for the retail and weather domains.

No model, no training, about a tenth of a millisecond per query: for users without a
trained model, as a fallback, and to test the engine. Slots come from gazetteers (the
cities of the offline forecasts and the catalog plus a list of well-known places, the
catalog's items and store types, time and preference phrases) matched longest-first over
`labels.tokenize(text)`; a capitalised place after "in"/"for"/"at" is a location too.
The intent comes from cue words ("will it rain" -> weather.rainfall_yes_no, "how much"
-> price_check, "nearest" -> store_location, ...). Tags are NeMo BIO labels (labels.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import yaml

from callsense.core.settings import Settings
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluBackend, NluResult, nlu_backends

EXTRA_PLACES = """
san diego, san jose, sacramento, oakland, portland, las vegas, houston, dallas, san antonio, fort worth,
atlanta, philadelphia, washington, washington dc, detroit, minneapolis, nashville, new orleans, salt lake city,
honolulu, anchorage, orlando, tampa, pittsburgh, baltimore, st louis, kansas city, cleveland, cincinnati,
columbus, indianapolis, milwaukee, charlotte, raleigh, albuquerque, tucson, el paso, omaha, buffalo,
springfield, santa monica, pasadena, long beach, berkeley, palo alto, brooklyn, queens, hollywood,
berlin, madrid, rome, milan, sydney, melbourne, vancouver, montreal, mexico city, beijing, shanghai,
hong kong, singapore, dubai, delhi, new delhi, bangalore, seoul, osaka, amsterdam, dublin, edinburgh,
lisbon, barcelona, munich, zurich, vienna, prague, stockholm, oslo, copenhagen, cairo, cape town,
nairobi, lagos, buenos aires, sao paulo, rio de janeiro, lima, bogota, istanbul, athens, bangkok
"""

TIME_PHRASES = """
today, tonight, now, right now, currently, this morning, this afternoon, this evening, later today,
tomorrow, tomorrow morning, tomorrow afternoon, tomorrow night, tomorrow evening, day after tomorrow,
the day after tomorrow, this week, next week, the next week, this coming week, the coming week,
this weekend, next weekend, the weekend, over the weekend, on the weekend,
next few days, the next few days, coming days, the coming days, next 7 days, the next 7 days,
next seven days, the next seven days, in two days, in three days, in 2 days, in 3 days, in 4 days, in 5 days,
monday, tuesday, wednesday, thursday, friday, saturday, sunday,
on monday, on tuesday, on wednesday, on thursday, on friday, on saturday, on sunday,
next monday, next tuesday, next wednesday, next thursday, next friday, next saturday, next sunday
"""

SORT_PHRASES = {
    "rating.high": "best, best rated, best-rated, highest rated, highest-rated, top rated, top-rated, "
                   "best reviewed, highest ranked, most popular, finest, top",
    "rating.low": "worst, worst rated, worst-rated, lowest rated, lowest-rated",
    "cost.low": "cheapest, cheap, lowest price, lowest prices, lowest-priced, best price, "
                "best deal, least expensive, inexpensive, affordable, bargain",
    "cost.high": "most expensive, highest price, priciest, premium",
    "cost.average": "average price, typical price",
}

WEATHER_CUES = {
    "rain": {"rain", "raining", "rainy", "rains", "rainfall", "showers", "drizzle", "drizzling", "umbrella",
             "precipitation", "storm", "storms", "stormy", "thunderstorm", "thunderstorms", "pouring", "wet", "downpour"},
    "snow": {"snow", "snowing", "snowy", "snows", "snowfall", "blizzard", "flurries", "sleet"},
    "humidity": {"humid", "humidity", "muggy"},
    "temperature": {"temperature", "temperatures", "temp", "hot", "cold", "warm", "cool", "chilly", "freezing",
                    "degrees", "heat", "mild", "frost", "frosty"},
    "sunny": {"sunny", "sun", "sunshine", "clear", "sunny"},
    "cloudy": {"cloudy", "clouds", "cloud", "overcast", "foggy", "fog", "gray", "grey", "gloomy"},
    "weather": {"weather", "forecast", "outside", "climate"},
}
WEATHER_INTENT = {
    ("rain", False): "weather.rainfall", ("rain", True): "weather.rainfall_yes_no",
    ("snow", False): "weather.snow", ("snow", True): "weather.snow_yes_no",
    ("humidity", False): "weather.humidity", ("humidity", True): "weather.humidity_yes_no",
    ("temperature", False): "weather.temperature", ("temperature", True): "weather.temperature_yes_no",
    ("sunny", False): "weather.sunny", ("sunny", True): "weather.sunny",
    ("cloudy", False): "weather.cloudy", ("cloudy", True): "weather.cloudy",
    ("weather", False): "weather.weather", ("weather", True): "weather.weather",
}
YES_NO_STARTS = {"will", "is", "does", "do", "should", "are", "was", "would", "am", "can", "could", "shall",
                 "isn't", "won't", "doesn't", "gonna", "any"}

PRICE_CUES = ("how much", "price", "prices", "priced", "cost", "costs", "pricing", "cheapest", "cheap", "expensive",
              "lowest price", "best price", "how expensive", "deal", "deals", "pay")
INVENTORY_CUES = ("in stock", "stock", "available", "availability", "do you have", "do you carry", "do you sell",
                  "have any", "sold out", "any left", "carry", "in store", "on the shelf", "on shelves")
STORE_CUES = ("nearest", "closest", "near me", "nearby", "near", "where is", "where's", "where can i", "where do i",
              "where to", "find", "store", "stores", "shop", "restaurant", "restaurants", "place", "places",
              "open", "hours", "located", "location of", "address", "go for", "get some", "eat", "recommend")
NAVIGATION = [
    ("navigation.geteta", ("how long will it take", "how long does it take", "how long to get", "eta",
                           "when will i arrive", "when will i get", "arrival time", "how far")),
    ("navigation.showdirection", ("directions", "direction to", "route to", "how do i get to", "how to get to",
                                  "way to get to", "give me the route")),
    ("navigation.startnavigationpoi", ("navigate to", "take me to", "start navigation", "drive me to",
                                       "navigate me", "lets go to", "let's go to")),
    ("navigation.showmappoi", ("show me on the map", "on a map", "on the map", "show me a map", "map of",
                               "show me where")),
]

INTERROGATIVE = {"where": "interrogative.location", "how": "interrogative.manner", "when": "interrogative.time",
                 "who": "interrogative.personal", "whom": "interrogative.personal", "what": "interrogative",
                 "which": "interrogative", "why": "interrogative", "what's": "interrogative",
                 "where's": "interrogative.location"}
ARTICLES = {"the", "a", "an"}
VERBS = {"get", "buy", "find", "have", "need", "want", "eat", "go", "purchase", "order", "grab", "sell", "carry",
         "check", "tell", "show", "know", "looking", "look", "rain", "snow"}
STOP_AFTER_ITEM = {"in", "at", "near", "for", "on", "around", "today", "tomorrow", "cost", "costs", "please", "now",
                   "nearby", "stock", "available", "there", "here", "right", "this", "next", "with", "from", "and"}
SKIP_BEFORE_ITEM = {"is", "are", "the", "a", "an", "some", "any", "of", "do", "does", "you", "have", "carry", "sell",
                    "for", "pair", "pairs", "it", "much", "how", "price", "cost", "i", "get", "buy", "can", "me",
                    "what's", "whats", "what", "s", "your", "there"}
CUE_WORDS = {"price", "prices", "priced", "cost", "costs", "pricing", "expensive", "cheap", "cheapest", "stock",
             "available", "availability", "sold", "out", "left", "much", "many", "deal", "deals", "pay", "tell",
             "know", "check", "please", "want", "need", "looking", "like", "would", "to"}


@dataclass
class _Span:
    start: int
    end: int  # exclusive
    key: str  # context key (location, time, item, store_type, sort)
    slot_type: str  # NeMo slot type
    value: str


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\n", " ").split(",") if p.strip()]


@lru_cache(maxsize=1)
def _gazetteers() -> dict[str, dict[tuple[str, ...], tuple[str, str, str]]]:
    """phrase tokens -> (context key, slot type, value), per kind."""
    from callsense.dialog.fulfillment.catalog import load_catalog_data
    from callsense.dialog.fulfillment.weather import FORECASTS_FILE

    def key(phrase: str) -> tuple[str, ...]:
        return tuple(labels.tokenize(phrase.replace(".", "")))

    places: dict[tuple[str, ...], tuple[str, str, str]] = {}
    forecast_cities = yaml.safe_load(FORECASTS_FILE.read_text(encoding="utf-8"))["cities"]
    catalog = load_catalog_data()
    for name, spec in list(forecast_cities.items()) + list(catalog.cities.items()):
        for phrase in [name, *spec.get("aliases", [])]:
            if key(phrase):
                places[key(phrase)] = ("location", "location", name.lower())
    for phrase in _phrases(EXTRA_PLACES):
        places.setdefault(key(phrase), ("location", "location", phrase))
    times = {key(p): ("time", "time.period_of_time", p) for p in _phrases(TIME_PHRASES)}
    sorts: dict[tuple[str, ...], tuple[str, str, str]] = {}
    for slot_type, text in SORT_PHRASES.items():
        for p in _phrases(text):
            sorts[key(p)] = ("sort", slot_type, slot_type)
    store_types = {key(p): ("store_type", "store.type", p) for p in catalog.store_type_phrases}
    items: dict[tuple[str, ...], tuple[str, str, str]] = {}
    for phrase in catalog.item_phrases():
        items[key(phrase)] = ("item", "item.type", phrase)
    return {"time": times, "sort": sorts, "location": places, "store_type": store_types, "item": items}


# Ties between gazetteers of the same length go to the first kind listed.
_KIND_ORDER = ("time", "sort", "location", "store_type", "item")
_CAPITALISED_PLACE = re.compile(
    r"\b(?:in|for|at|near|around|to)\s+((?:[A-Z][\w'\-]*\.?)(?:\s+(?:[A-Z][\w'\-]*\.?|de|del|la|of))*)")
_NOT_PLACES = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "i", "the", "stock",
               "celsius", "fahrenheit", "january", "february", "march", "april", "may", "june", "july", "august",
               "september", "october", "november", "december"}


@lru_cache(maxsize=256)
def _cue_pattern(cues: tuple[str, ...] | str) -> re.Pattern:
    if isinstance(cues, str):
        cues = (cues,)
    alternatives = "|".join(re.escape(c) for c in sorted(cues, key=len, reverse=True))
    return re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])")


def _has(text: str, cues: tuple[str, ...] | str) -> bool:
    """Does any cue occur in `text` as whole words?"""
    return _cue_pattern(cues).search(text) is not None


@nlu_backends.register("keywords")
class KeywordNlu(NluBackend):
    name = "keywords"

    def __init__(self, settings: Settings | None = None):
        self.settings = settings
        self.gazetteers = _gazetteers()
        self.max_len = max(len(k) for g in self.gazetteers.values() for k in g)

    # ---- slots ---------------------------------------------------------------------

    def find_spans(self, tokens: list[str], original: str) -> list[_Span]:
        """Gazetteer entities over `tokens` (places, times, sort words, store types, catalog
        items), longest first; `original` (the text with its capitals) finds "in Gotham"."""
        return self._spans(tokens, original)

    def _spans(self, tokens: list[str], original: str) -> list[_Span]:
        spans: list[_Span] = []
        taken = [False] * len(tokens)
        i = 0
        n_tok = len(tokens)
        while i < n_tok:
            best: _Span | None = None
            for n in range(min(self.max_len, n_tok - i), 0, -1):
                phrase = tuple(tokens[i:i + n])
                for kind in _KIND_ORDER:
                    hit = self.gazetteers[kind].get(phrase)
                    if hit:
                        best = _Span(i, i + n, hit[0], hit[1], hit[2])
                        break
                if best:
                    break
            if best:
                spans.append(best)
                for j in range(best.start, best.end):
                    taken[j] = True
                i = best.end
            else:
                i += 1
        if not any(s.key == "location" for s in spans):
            for m in _CAPITALISED_PLACE.finditer(original):
                place = labels.tokenize(m.group(1))
                if not place or place[0] in _NOT_PLACES:
                    continue
                for start in range(len(tokens) - len(place) + 1):
                    if tokens[start:start + len(place)] == place and not any(taken[start:start + len(place)]):
                        spans.append(_Span(start, start + len(place), "location", "location", " ".join(place)))
                        for j in range(start, start + len(place)):
                            taken[j] = True
                        break
                break
        return sorted(spans, key=lambda s: s.start)

    def _item_after_cue(self, tokens: list[str], spans: list[_Span]) -> _Span | None:
        """"how much is a <X> in LA", "do you have <X>": up to four words after the cue."""
        covered = {j for s in spans for j in range(s.start, s.end)}
        start: int | None = None
        words: list[str] = []
        for i, tok in enumerate(tokens):
            if start is None:
                if i in covered or tok in SKIP_BEFORE_ITEM or tok in STOP_AFTER_ITEM or tok in INTERROGATIVE \
                        or tok in CUE_WORDS:
                    continue
                start, words = i, [tok]
            elif i in covered or tok in STOP_AFTER_ITEM or tok in CUE_WORDS or len(words) >= 4:
                break
            else:
                words.append(tok)
        while words and words[-1] in SKIP_BEFORE_ITEM:
            words.pop()
        if start is None or not words:
            return None
        return _Span(start, start + len(words), "item", "item.type", " ".join(words))

    # ---- intent --------------------------------------------------------------------

    def parse(self, text: str) -> NluResult:
        tokens = labels.tokenize(text)
        if not tokens:
            return NluResult(intent=NO_MATCH, confidence=1.0, slots={}, tokens=[], tags=[])
        joined = " ".join(tokens)
        spans = self._spans(tokens, text)
        kinds = {s.key for s in spans}
        words = set(tokens)
        intent, confidence = NO_MATCH, 0.5

        nav = next((label for label, cues in NAVIGATION if _has(joined, cues)), None)
        weather_kind = next((k for k in ("rain", "snow", "humidity", "temperature", "sunny", "cloudy", "weather")
                             if words & WEATHER_CUES[k]), None)
        if weather_kind == "sunny" and "clear" in words and not (words & {"weather", "sky", "skies"}):
            weather_kind = None  # "clear" alone is not about the weather
        retail_words = kinds & {"item", "store_type"}
        if nav:
            intent, confidence = nav, 0.85
        elif weather_kind and not (retail_words and weather_kind in ("temperature", "weather", "sunny")):
            yes_no = tokens[0] in YES_NO_STARTS or _has(joined, "going to") and tokens[0] not in INTERROGATIVE
            if tokens[0] in ("what", "what's", "whats", "how", "when", "where"):
                yes_no = False
            if weather_kind == "rain" and _has(joined, "how much"):
                yes_no = False
            intent, confidence = WEATHER_INTENT[(weather_kind, yes_no)], 0.9
        elif _has(joined, INVENTORY_CUES) and ("item" in kinds or not retail_words):
            intent, confidence = "inventory_check", 0.85
        elif _has(joined, PRICE_CUES) and "store_type" not in kinds:
            intent, confidence = "price_check", 0.9
        elif "store_type" in kinds or _has(joined, STORE_CUES):
            intent, confidence = "store_location", 0.85 if "store_type" in kinds or "item" in kinds else 0.7
        elif "item" in kinds:
            intent, confidence = "price_check", 0.5  # a bare item: most likely "how much is it?"

        if intent in ("price_check", "inventory_check") and "item" not in kinds:
            extra = self._item_after_cue(tokens, spans)
            if extra is not None:
                spans = sorted([*spans, extra], key=lambda s: s.start)
        # Sort preferences only matter for retail; "best" in "best weather" is not a preference.
        if not intent.startswith(("price", "store", "inventory")):
            spans = [s for s in spans if s.key != "sort"]

        slots: dict[str, str] = {}
        for s in spans:
            slots.setdefault(s.key, s.value)
        tags = labels.tags_from_spans(tokens, [(s.start, s.end, s.slot_type) for s in spans])
        for i, tok in enumerate(tokens):
            if tags[i] != labels.OUTSIDE:
                continue
            if tok in INTERROGATIVE:
                tags[i] = "B-" + INTERROGATIVE[tok]
            elif tok in ARTICLES:
                tags[i] = "B-article"
            elif tok in VERBS:
                tags[i] = "B-verb"
        return NluResult(intent=intent, confidence=confidence, slots=slots, tokens=tokens, tags=tags)
