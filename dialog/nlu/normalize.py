"""Shoppers' spelling, before any NLU backend reads it: typos, slang and abbreviations.

`normalize_text("is it gonna rain in sf tmrw")` -> `"is it going to rain in san francisco tomorrow"`.
Replacements are whole words (case-insensitive; the rest of the text, capitals included, is
kept: the `keywords` backend reads "in Gotham" as a place by its capital). Every replacement
is one word of `labels.tokenize` -> one or more words, so `normalize_words` can say which
original word each normalised word came from (the held-out evaluation scores the tags of the
words the user wrote).

`looks_like_code(text)` and `plausible_value(value)` are the entity checks the dialog layer
uses so that SQL, templates and stray letters never become slot values.
"""

from __future__ import annotations

import re
from functools import lru_cache

from callsense.dialog.nlu import labels

#: lower-case word -> what it means. Only words that are not also ordinary words in a
#: shopper's question (no "sun", "sat", "mon": "will the sun be out", "I sat").
REPLACEMENTS: dict[str, str] = {
    # time
    "tmrw": "tomorrow", "tmr": "tomorrow", "tmrow": "tomorrow", "tmw": "tomorrow", "tomoz": "tomorrow",
    "tomorow": "tomorrow", "tommorow": "tomorrow", "tommorrow": "tomorrow", "tomorrrow": "tomorrow",
    "2morrow": "tomorrow", "2moro": "tomorrow", "2morow": "tomorrow", "tmrrw": "tomorrow", "tomm": "tomorrow",
    "tonite": "tonight", "2nite": "tonight", "tonigth": "tonight", "tnite": "tonight", "toniht": "tonight",
    "2day": "today", "tday": "today", "todya": "today", "tody": "today",
    "wknd": "weekend", "wkend": "weekend", "weeknd": "weekend", "weekened": "weekend",
    "tues": "tuesday", "tue": "tuesday", "weds": "wednesday", "wednes": "wednesday", "wensday": "wednesday",
    "wendsday": "wednesday", "thurs": "thursday", "thur": "thursday", "thu": "thursday", "thrusday": "thursday",
    "fri": "friday", "satur": "saturday", "saterday": "saturday", "sunday's": "sunday",
    "rn": "right now",
    # weather
    "wether": "weather", "weathr": "weather", "wheather": "weather", "weahter": "weather", "waether": "weather",
    "weater": "weather", "wheater": "weather", "wx": "weather",
    "forcast": "forecast", "forcaste": "forecast", "forecats": "forecast", "forecst": "forecast",
    "temprature": "temperature", "temperture": "temperature", "tempature": "temperature",
    "tempreture": "temperature", "temperatue": "temperature",
    "humidty": "humidity", "humdity": "humidity", "humiditiy": "humidity",
    "precip": "precipitation", "rainin": "raining", "raing": "raining", "snowin": "snowing", "snowign": "snowing",
    "sunnny": "sunny", "cloudly": "cloudy", "clowdy": "cloudy",
    # shopping
    "nearst": "nearest", "neares": "nearest", "closeset": "closest", "clostest": "closest",
    "cheapst": "cheapest", "chepest": "cheapest", "cheepest": "cheapest",
    "resturant": "restaurant", "restaraunt": "restaurant", "restuarant": "restaurant", "restraunt": "restaurant",
    "resturants": "restaurants", "restaurnt": "restaurant",
    "avail": "available", "availble": "available", "avaliable": "available", "availabe": "available",
    "stok": "stock", "pric": "price", "prise": "price", "priec": "price",
    "hrs": "hours", "hr": "hour", "headfones": "headphones", "hedphones": "headphones",
    "sneakrs": "sneakers", "sneeks": "sneakers", "kicks": "sneakers", "airpod": "airpods",
    "pharmcy": "pharmacy", "pharmacey": "pharmacy", "grocey": "grocery", "grocry": "grocery",
    "electonics": "electronics", "electronix": "electronics", "eletronics": "electronics",
    # places
    "sf": "san francisco", "sfo": "san francisco", "nyc": "new york", "ny": "new york", "la": "los angeles",
    "chi": "chicago", "chitown": "chicago", "atx": "austin", "philly": "philadelphia", "vegas": "las vegas",
    "seatle": "seattle", "seattel": "seattle", "chicgo": "chicago", "chicaco": "chicago",
    "austn": "austin", "denvr": "denver", "bostn": "boston", "pheonix": "phoenix", "phenix": "phoenix",
    "mimai": "miami", "londn": "london", "toronot": "toronto",
    # chat spelling
    "whats": "what's", "wats": "what's", "wat": "what", "wut": "what", "whts": "what's", "hows": "how's",
    "wheres": "where's", "whr": "where", "wher": "where", "hw": "how", "im": "i'm", "ive": "i've",
    "dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "wont": "won't", "cant": "can't",
    "u": "you", "ya": "you", "ur": "your", "r": "are", "y'all": "you", "pls": "please", "plz": "please",
    "plez": "please", "thx": "thanks", "thanx": "thanks", "thnx": "thanks", "ty": "thank you",
    "gonna": "going to", "gunna": "going to", "wanna": "want to", "gotta": "got to", "lemme": "let me",
    "gimme": "give me", "kinda": "kind of", "b4": "before", "abt": "about", "bout": "about", "w": "with",
    "dunno": "don't know", "k": "okay", "kk": "okay",
}

#: "whether" is a word of its own; after these it is the weather misspelt ("whats the whether").
_WEATHER_AFTER = frozenset({"the", "what's", "whats", "how's", "hows"})

_WORD = re.compile(r"(?<![\w'])([A-Za-z0-9][A-Za-z0-9']*)(?![\w'])")


def _replace(word: str, previous: str) -> str | None:
    lower = word.lower()
    if lower == "whether" and previous in _WEATHER_AFTER:
        return "weather"
    return REPLACEMENTS.get(lower)


def normalize_text(text: str) -> str:
    """The text with known typos, slang and abbreviations spelled out (whole words only)."""
    if not text:
        return text
    previous = [""]

    def fix(match: re.Match) -> str:
        word = match.group(1)
        replacement = _replace(word, previous[0])
        previous[0] = word.lower()
        return word if replacement is None else replacement

    return _WORD.sub(fix, text)


def normalize_words(words: list[str]) -> tuple[list[str], list[int]]:
    """Tokenized words -> (normalised words, the index of the original word of each)."""
    out: list[str] = []
    origin: list[int] = []
    for i, word in enumerate(words):
        replacement = _replace(word, words[i - 1] if i else "")
        parts = labels.tokenize(replacement) if replacement else [word]
        out += parts
        origin += [i] * len(parts)
    return out, origin


def project_tags(n_words: int, origin: list[int], tags: list[str]) -> list[str]:
    """Tags over normalised words -> tags over the original words (each takes its first
    normalised word's tag; an `I-` that no longer continues a span becomes `B-`)."""
    out = [labels.OUTSIDE] * n_words
    seen: set[int] = set()
    for j, i in enumerate(origin):
        if i not in seen and j < len(tags):
            out[i] = tags[j]
            seen.add(i)
    previous = labels.OUTSIDE
    for i, tag in enumerate(out):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            out[i] = "B-" + tag[2:]
        previous = out[i]
    return out


# ------------------------------------------------------------------------- entity checks

_CODE = re.compile(
    r"\{\{|\}\}|\{%|%\}|\$\{|#\{|<\s*/?\s*script|__\w+__|/\*|\*/|--\s*$|--\s|;\s*--"
    r"|;\s*(drop|delete|insert|update|select|create|alter|truncate|exec)\b"
    r"|\b(drop|truncate|alter)\s+table\b|\bunion\s+(all\s+)?select\b|\bselect\b.{0,80}\bfrom\b"
    r"|\bdelete\s+from\b|\binsert\s+into\b|\bor\s+['\"]?1['\"]?\s*=\s*['\"]?1\b|%[sdn]\b",
    re.IGNORECASE,
)
#: Words that do not occur in a product, place or store name a shopper would say.
_CODE_WORDS = frozenset({
    "drop", "table", "tables", "select", "insert", "delete", "union", "truncate", "alter", "exec", "sqlite",
    "master", "null", "none", "nan", "script", "alert", "endfor", "class", "mro", "jarvis", "status", "error",
    "user", "text", "context", "intent", "dialog", "turns", "catalog", "items", "from", "where",
})


#: Words that refer to a thing without naming it ("do you have *them*?").
_NO_NAME_WORDS = frozenset({
    "it", "them", "that", "those", "this", "these", "one", "ones", "some", "any", "stuff", "thing", "things",
    "something", "anything", "everything", "the", "a", "an", "same", "there", "here", "they", "what", "which",
})


def looks_like_code(text: str) -> bool:
    """SQL, template or script syntax in a user's text (never a shopper's question)."""
    return bool(text) and _CODE.search(text) is not None


def plausible_value(value: str) -> bool:
    """Could this be a place, item or store a person names? Words of letters (digits may
    come with letters: "ps5", "1tb ssd"), one of two letters or more ("tv"), at most six
    words, no code words, no template or SQL characters."""
    if not value or looks_like_code(value) or any(ch in value for ch in "{}<>;=$%\\|`"):
        return False
    words = labels.tokenize(value)
    if not words or len(words) > 6:
        return False
    if not any(sum(ch.isalpha() for ch in w) >= 2 for w in words):
        return False
    if any(w in _CODE_WORDS for w in words) or all(w in _NO_NAME_WORDS for w in words):
        return False
    return all(any(ch.isalpha() for ch in w) or w.isdigit() for w in words)


@lru_cache(maxsize=1)
def replacement_words() -> frozenset[str]:
    return frozenset(REPLACEMENTS)
