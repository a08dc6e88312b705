"""What the dialog engine runs on every user input, around the configured NLU backend.

    text -> normalise (typos, slang, abbreviations: normalize.py) -> backend.parse
         -> slot checks (gazetteer fill-in, item choice against the catalog, junk removal)
         -> small talk (greeting, thanks, goodbye, help, start over), when the flows route it

Nothing here is trained: it fixes, in front of and behind any backend (`embedded`, `riva`,
`keywords`), what a model trained on clean templates gets wrong with real shoppers' text:
"tmrw", "sf", "wether"; an item tagged as its brand only ("nike" of "nike running shoes");
a place or day the model left untagged though the gazetteers know it; SQL or template text
read as an item. The result is an ordinary `NluResult` (tokens and tags are those of the
normalised text).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from functools import lru_cache
from typing import Iterable

from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NO_MATCH, NluBackend, NluResult, NluUnavailable
from callsense.dialog.nlu.normalize import looks_like_code, normalize_text, plausible_value

log = logging.getLogger("callsense.dialog")

#: Context keys whose values name an entity (checked by `plausible_value`); `sort` and
#: the like hold a slot type, not the user's words.
ENTITY_KEYS = ("location", "item", "store_type", "store_name")
RETAIL_INTENTS = ("price_check", "inventory_check", "store_location")

# Small talk: phrases (token tuples) per intent, and words that may come with them.
_SMALL_TALK: dict[str, tuple[str, ...]] = {
    "smalltalk.goodbye": ("bye", "goodbye", "good bye", "bye bye", "see you", "see ya", "see you later",
                          "that's all", "that is all", "that's it", "i'm done", "im done", "we're done",
                          "good night", "goodnight", "farewell", "talk to you later", "later", "gotta go",
                          "have a good day", "have a nice day", "exit", "quit"),
    "smalltalk.start_over": ("start over", "start again", "restart", "reset", "begin again", "from the top",
                             "new conversation", "let's start over", "forget everything", "forget it",
                             "never mind", "nevermind", "cancel", "clear"),
    "smalltalk.help": ("help", "help me", "can you help", "can you help me", "what can you do",
                       "what do you do", "what can i ask", "what can i ask you", "how does this work",
                       "what are my options", "options", "i need help", "menu", "what do you know"),
    "smalltalk.thanks": ("thanks", "thank you", "thank you very much", "thanks a lot", "many thanks", "cheers",
                         "appreciate it", "much appreciated", "great thanks", "perfect", "awesome", "great",
                         "cool", "nice", "that helps", "that's helpful", "got it"),
    "smalltalk.greeting": ("hi", "hello", "hey", "hey there", "hi there", "hello there", "howdy", "yo",
                           "good morning", "good afternoon", "good evening", "greetings", "hiya", "sup",
                           "what's up", "how are you", "how are you doing", "how's it going"),
}
#: When several kinds are said at once, the first of this order wins ("thanks, goodbye").
_SMALL_TALK_ORDER = ("smalltalk.goodbye", "smalltalk.start_over", "smalltalk.help", "smalltalk.thanks",
                     "smalltalk.greeting")
_SMALL_TALK_FILLER = frozenset({"so", "much", "very", "okay", "ok", "oh", "ah", "well", "then", "for", "now",
                                "nara", "assistant", "bot", "again", "please", "and", "all", "a", "lot", "you",
                                "just", "please", "the", "really", "no", "yes", "yeah", "alright", "um", "uh",
                                "everyone", "folks", "there", "friend", "buddy", "today", "it", "that", "me"})


def _phrase_index() -> dict[tuple[str, ...], str]:
    index: dict[tuple[str, ...], str] = {}
    for intent in _SMALL_TALK_ORDER:
        for phrase in _SMALL_TALK[intent]:
            index.setdefault(tuple(labels.tokenize(phrase)), intent)
    return index


_SMALL_TALK_INDEX = _phrase_index()
_SMALL_TALK_MAX = max(len(k) for k in _SMALL_TALK_INDEX)


def small_talk(tokens: list[str]) -> str | None:
    """The small-talk intent of an utterance that is small talk only, else None."""
    if not tokens or len(tokens) > 12:
        return None
    found: set[str] = set()
    i = 0
    while i < len(tokens):
        for n in range(min(_SMALL_TALK_MAX, len(tokens) - i), 0, -1):
            intent = _SMALL_TALK_INDEX.get(tuple(tokens[i:i + n]))
            if intent:
                found.add(intent)
                i += n
                break
        else:
            if tokens[i] not in _SMALL_TALK_FILLER:
                return None
            i += 1
    return next((intent for intent in _SMALL_TALK_ORDER if intent in found), None)


_HOURS_VERBS = frozenset({"open", "opens", "close", "closes", "closing", "closed"})
_HOURS_STARTS = frozenset({"is", "are", "when", "what", "what's", "does", "do", "will", "how", "until", "till",
                           "til", "was", "whats", "which", "can", "could"})


_QUESTION_START = (r"(?:what|whats|what's|how|hows|how's|is|are|r|do|does|can|could|will|would|where|wheres|"
                   r"where's|when|which|any|got|should|did|tell|show|find)\b")
_CLAUSE_BREAK = re.compile(
    rf"\s*\?+\s*(?:and\s+|also\s+|plus\s+|&\s+)?(?=\w)"
    rf"|\s*[,;]?\s+(?:and(?:\s+also)?|also|plus|&)\s+(?={_QUESTION_START})"
    rf"|\s*[.;!]\s+(?:and\s+|also\s+)?(?={_QUESTION_START})",
    re.IGNORECASE)


def split_questions(text: str) -> list[str]:
    """A text with several questions -> the questions (each of two words or more), else [text]."""
    parts = [p.strip(" ?!.,;") for p in _CLAUSE_BREAK.split(text or "")]
    parts = [p for p in parts if p]
    if len(parts) < 2 or any(len(labels.tokenize(p)) < 2 for p in parts):
        return [text]
    return parts


def asks_opening_hours(tokens: list[str]) -> bool:
    """"is the pharmacy open tomorrow?", "when does it close?", "store hours in Austin" (not
    "open the map")."""
    words = set(tokens)
    if "hours" in words or "opening" in words:
        return True
    return bool(words & _HOURS_VERBS) and bool(tokens) and tokens[0] in _HOURS_STARTS


@lru_cache(maxsize=1)
def _keywords():
    from callsense.dialog.nlu.keywords import KeywordNlu

    return KeywordNlu()


@lru_cache(maxsize=1)
def _items():
    from callsense.dialog.fulfillment.catalog import item_vocabulary

    return item_vocabulary()


class Understanding(NluBackend):
    """`Understanding(backend, intents=routed labels).parse(text)` -> NluResult.

    `intents`: the labels the flows route. Small-talk intents are only returned when routed
    (a flow without them gets the backend's own answer, `nomatch.none` for "hello")."""

    def __init__(self, inner: NluBackend, *, intents: Iterable[str] | None = None):
        self.inner = inner
        self.name = getattr(inner, "name", "?")
        self.intents = set(intents) if intents is not None else set(labels.RULE_INTENTS)

    def parse(self, text: str) -> NluResult:
        normalized = normalize_text(text) if isinstance(text, str) else text
        result = self.inner.parse(normalized)
        if not isinstance(result, NluResult):
            return result  # the engine reports a backend that answers nonsense
        try:
            refined = self.refine(result, text if isinstance(text, str) else "", normalized or "")
            return self._first_question(refined, text, normalized) if isinstance(text, str) else refined
        except NluUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a bug here must not cost the user the backend's answer
            log.exception("understanding: refining %r failed; using the backend's result", text)
            return result

    def _first_question(self, whole: NluResult, text: str, normalized: str) -> NluResult:
        """Several questions at once ("how much are airpods in Austin and do you have them in
        stock?"): the first is answered, the others are said back (`extra["also_asked"]`)."""
        parts = split_questions(normalized)
        if len(parts) < 2 or looks_like_code(text):
            return whole
        first = self.refine(self.inner.parse(parts[0]), parts[0], parts[0])
        if first.intent == NO_MATCH or first.intent not in self.intents or first.intent in labels.RULE_INTENTS:
            return whole
        slots = dict(first.slots)
        for key in ("location", "time"):  # the place and the day are said once for all the questions
            if key in whole.slots and key not in slots:
                slots[key] = whole.slots[key]
        # the words and tags stay those of the whole message (archived as said)
        return replace(whole, intent=first.intent, confidence=first.confidence, slots=slots,
                       extra={**whole.extra, "also_asked": list(parts[1:])})

    # ---- the steps -------------------------------------------------------------

    def refine(self, result: NluResult, text: str, normalized: str) -> NluResult:
        tokens = list(result.tokens) or labels.tokenize(normalized)
        tags = list(result.tags) if len(result.tags) == len(tokens) else labels.tags_from_slots(tokens, result.slots)
        slots = dict(result.slots or {})
        intent = result.intent
        code = looks_like_code(text)

        if slots.get("time") is not None and not _names_a_time(str(slots["time"])):
            slots.pop("time")  # "on" of "rain on my parade"
            tags = _untag(tags, tokens, "time")
        tags, slots = self._choose_location(tokens, tags, slots)
        tags, slots = self._fill_from_gazetteers(tokens, tags, slots, normalized, intent, code)
        tags, slots = self._choose_item(tokens, tags, slots, code)
        for key in ENTITY_KEYS:
            value = slots.get(key)
            if value is None or (key == "item" and _items().exact(str(value))):
                continue
            if not plausible_value(str(value)) or (code and key != "location"):
                slots.pop(key)
                tags = _untag(tags, tokens, key)
        confidence = result.confidence
        if code:  # nothing in a line of SQL or a template is a question
            intent = NO_MATCH
        elif intent != "store_location" and "store_location" in self.intents and asks_opening_hours(tokens):
            intent, confidence = "store_location", max(confidence, 0.9)
        talk = small_talk(tokens) if not code else None
        if talk and talk in self.intents and not (set(slots) - {"time"}):
            intent, confidence = talk, 1.0
        return replace(result, intent=intent, confidence=confidence, slots=slots, tokens=tokens, tags=tags)

    def _choose_location(self, tokens, tags, slots):
        """Of several places the backend tagged ("the north face ... in seattle"), one the
        gazetteers know; a tagged word that is no place while a known place is untagged
        gives way to that place."""
        spans = _spans_of(tags, ("location",))
        places = _keywords().gazetteers["location"]
        if not spans or any(tuple(tokens[s:e]) in places for s, e in spans[:1]):
            return tags, slots
        known = [(s, e) for s, e in spans if tuple(tokens[s:e]) in places]
        if not known:  # a known place the backend left untagged ("in the seahawks game in seattle")
            for span in _keywords().find_spans(tokens, ""):
                if span.key == "location" and all(
                        tags[j] == labels.OUTSIDE or _function_tag(tags[j]) for j in range(span.start, span.end)):
                    known = [(span.start, span.end)]
                    break
        if not known:
            return tags, slots
        s, e = known[0]
        tags = _untag(tags, tokens, "location")
        for j in range(s, e):
            tags[j] = ("B-" if j == s else "I-") + "location"
        slots["location"] = " ".join(tokens[s:e])
        return tags, slots

    def _fill_from_gazetteers(self, tokens, tags, slots, normalized, intent, code):
        """A place or day the backend left untagged, that the gazetteers know exactly; an
        item of the catalog when a retail question has neither item nor store."""
        if code:
            return tags, slots
        kw = _keywords()
        spans = kw.find_spans(tokens, normalized)
        retail = intent in RETAIL_INTENTS
        for span in spans:
            key = span.key
            if key in slots:
                continue
            if key in ("item", "store_type") and not (retail and "item" not in slots and "store_type" not in slots):
                continue
            if key == "sort" and not retail:
                continue
            if any(t != labels.OUTSIDE and not _function_tag(t) for t in tags[span.start:span.end]):
                continue
            for j in range(span.start, span.end):
                tags[j] = ("B-" if j == span.start else "I-") + span.slot_type
            slots[key] = span.value
        return tags, slots

    def _choose_item(self, tokens, tags, slots, code):
        """Of the item spans the backend tagged (alone, and adjacent ones joined: "nike" +
        "running shoes"), the one the catalog knows best; in code-like text only a known one."""
        spans = _spans_of(tags, ("item.type", "item.name"))
        if not spans:
            return tags, slots
        candidates: list[tuple[int, int]] = list(spans)
        joined: list[tuple[int, int]] = []
        for s, e in spans:
            if joined and joined[-1][1] == s:
                joined[-1] = (joined[-1][0], e)
            else:
                joined.append((s, e))
        candidates = [c for c in joined if c not in candidates] + candidates
        vocabulary = _items()
        for s, e in list(candidates):  # "ray" + "bans", "band" + "aids", "adidas" + "sneakers"
            for s2, e2 in ((s, e + 1), (s, e + 2), (s - 1, e), (s - 2, e)):
                if 0 <= s2 and e2 <= len(tokens) and (s2, e2) not in candidates and all(
                        j in range(s, e) or _absorbable(tags[j]) for j in range(s2, e2)) and (
                        vocabulary.exact(" ".join(tokens[s2:e2]))):
                    candidates.insert(0, (s2, e2))
        knows = vocabulary.exact if code else vocabulary.knows
        known = [(s, e) for s, e in candidates if knows(" ".join(tokens[s:e]))]
        if known:
            s, e = max(known, key=lambda c: (c[1] - c[0], -c[0]))
        elif code:
            slots.pop("item", None)
            return _untag(tags, tokens, "item"), slots
        else:  # an item the catalog does not know: with the words of its name left untagged
            s, e = _widen(tokens, tags, *joined[0])
            if any(tags[j][2:] in ("item.color", "item.size") for j in range(s, e)):
                slots.pop("item_color", None)
                slots.pop("item_size", None)
        value = " ".join(tokens[s:e])
        if slots.get("item") != value or any(not tags[j].endswith(("item.type", "item.name")) for j in range(s, e)):
            slots["item"] = value
            kind = next((tags[j][2:] for j in range(s, e) if tags[j].endswith(("item.type", "item.name"))),
                        "item.type")
            for j in range(s, e):
                tags[j] = ("B-" if j == s else "I-") + kind
            tags = repair(tags)
            left = {labels.SLOT_TYPE_TO_CONTEXT_KEY.get(t[2:]) for t in tags if t != labels.OUTSIDE}
            for key in ("sort", "item_color", "item_size", "item_quantity"):  # absorbed into the item's name
                if key not in left:
                    slots.pop(key, None)
        return tags, slots


#: Words that end an item's name on its left ("how much is a | unicorn plushie").
_NOT_ITEM_WORDS = frozenset({
    "good", "nice", "great", "decent", "new", "spot", "place", "places", "one", "ones", "some", "more",
    "eat", "grab", "try", "order", "purchase", "pick", "drink", "sells", "sell", "stock", "stocks", "got",
    "a", "an", "the", "some", "any", "is", "are", "was", "of", "for", "much", "many", "how", "what", "what's",
    "whats", "price", "prices", "cost", "costs", "do", "does", "you", "have", "sell", "carry", "stock", "in", "at",
    "near", "buy", "get", "find", "i", "me", "my", "need", "want", "looking", "pair", "pairs", "and", "or", "to",
    "your", "their", "there", "where", "can", "could", "would", "please", "show", "tell", "check", "on", "with",
    "cheapest", "cheap", "best", "nearest", "closest", "it", "them", "that", "this", "these", "those", "available",
})


def _widen(tokens: list[str], tags: list[str], start: int, end: int) -> tuple[int, int]:
    """An unknown item's span, widened to the left over adjacent words that are part of its
    name: untagged, or tagged as its colour/size by a model that never saw the name."""
    while start > 0 and end - start < 4:
        tag, word = tags[start - 1], tokens[start - 1]
        if word in _NOT_ITEM_WORDS or not any(ch.isalpha() for ch in word):
            break
        if tag != labels.OUTSIDE and tag[2:] not in ("item.color", "item.size"):
            break
        start -= 1
    return start, end


_TIME_WORDS = frozenset({
    "today", "tonight", "tomorrow", "now", "currently", "morning", "afternoon", "evening", "night", "noon",
    "midnight", "week", "weekend", "weekends", "day", "days", "hour", "hours", "month", "year", "later", "soon",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "christmas", "eve", "holidays",
    "holiday", "weekday", "weekdays", "late", "early", "right", "yesterday", "minutes", "am", "pm",
})


def _names_a_time(value: str) -> bool:
    words = labels.tokenize(value)
    return any(w in _TIME_WORDS or any(ch.isdigit() for ch in w) for w in words)


def _absorbable(tag: str) -> bool:
    """A tag a catalog item's name may take over ("adidas" read as a price word)."""
    return tag == labels.OUTSIDE or _function_tag(tag) or tag[2:].startswith(("cost.", "rating.", "item."))


def repair(tags: list[str]) -> list[str]:
    """An `I-x` that no longer continues an `x` span becomes `B-x`."""
    out, previous = [], labels.OUTSIDE
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def _function_tag(tag: str) -> bool:
    """interrogative, verb, article: tagged for training only, never a context slot."""
    return tag != labels.OUTSIDE and labels.SLOT_TYPE_TO_CONTEXT_KEY.get(tag[2:], "x") is None


def _spans_of(tags: list[str], types: tuple[str, ...]) -> list[tuple[int, int]]:
    """(start, end) of every span whose slot type is one of `types`."""
    spans: list[tuple[int, int]] = []
    for i, tag in enumerate(tags):
        kind = tag[2:] if tag != labels.OUTSIDE else None
        if kind not in types:
            continue
        if tag.startswith("I-") and spans and spans[-1][1] == i and tags[i - 1][2:] == kind:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return spans


def _untag(tags: list[str], tokens: list[str], key: str) -> list[str]:
    return [labels.OUTSIDE if t != labels.OUTSIDE and labels.SLOT_TYPE_TO_CONTEXT_KEY.get(t[2:]) == key else t
            for t in tags]
