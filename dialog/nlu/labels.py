"""The one mapping between the labels the flows use and the labels the NeMo training files use.

Three vocabularies meet here:

- **Flow labels**: the NLU intent labels that the main flow's `intent_transitions` route
  (`weather.rainfall_yes_no`, `store_location`, `nomatch.none`, ...), i.e. what
  `NluBackend.parse(...).intent` returns.
- **Training labels**: the intent names in `dict.intents.csv` and the BIO slot labels in
  `dict.slots.csv` (NeMo intent/slot format, WP-7328). Flows say `store_location` and
  `nomatch.none` where the training files say `find_the_store` and `unknown`.
- **Context keys**: where the engine stores an entity (`location`, `item`, `store_type`,
  `time`, `sort`) so that templates and fulfillment providers can read it.

Every NLU backend returns flow labels and context-key slots; every training export and
every model goes through the functions below. Token tags (`NluResult.tags`) are training
slot labels (`B-location`, `I-item.type`, `O`) over `tokenize(text)`.
"""

from __future__ import annotations

import re
import unicodedata

# ---------------------------------------------------------------------------------- intents

NO_MATCH = "nomatch.none"
NLU_ERROR = "jarvis_error"  # a service failure, never a training label

#: Flow label -> training intent label (dict.intents.csv). The order is the index order of
#: dict.intents.csv: never reorder, only append (a trained model's output layer depends on it).
INTENT_TO_TRAINING: dict[str, str] = {
    "price_check": "price_check",
    "store_location": "find_the_store",
    "inventory_check": "inventory_check",
    "weather.weather": "weather.weather",
    "weather.temperature": "weather.temperature",
    "weather.temperature_yes_no": "weather.temperature_yes_no",
    "weather.sunny": "weather.sunny",
    "weather.cloudy": "weather.cloudy",
    "weather.rainfall": "weather.rainfall",
    "weather.rainfall_yes_no": "weather.rainfall_yes_no",
    "weather.snow": "weather.snow",
    "weather.snow_yes_no": "weather.snow_yes_no",
    "weather.humidity": "weather.humidity",
    "weather.humidity_yes_no": "weather.humidity_yes_no",
    "navigation.startnavigationpoi": "navigation.startnavigationpoi",
    "navigation.geteta": "navigation.geteta",
    "navigation.showdirection": "navigation.showdirection",
    "navigation.showmappoi": "navigation.showmappoi",
    NO_MATCH: "unknown",
}
TRAINING_TO_INTENT: dict[str, str] = {v: k for k, v in INTENT_TO_TRAINING.items()}

#: dict.intents.csv, in index order.
TRAINING_INTENTS: list[str] = list(INTENT_TO_TRAINING.values())

#: The flow labels an NLU backend may return (plus NLU_ERROR, which the engine sets itself).
FLOW_INTENTS: list[str] = list(INTENT_TO_TRAINING)

#: Intents the dialog layer itself recognises (`callsense.dialog.nlu.understanding`), by rules
#: and in front of any backend: small talk. They are never training labels (an export maps
#: them to `unknown`), and a flow that does not route them sees `nomatch.none` instead.
SMALL_TALK_INTENTS: list[str] = [
    "smalltalk.greeting", "smalltalk.thanks", "smalltalk.goodbye", "smalltalk.help", "smalltalk.start_over",
]
RULE_INTENTS: list[str] = list(SMALL_TALK_INTENTS)

#: Flow label -> the `intent` value that the assistant's flows write into the context before
#: a fulfillment state (WP-7328's values); providers accept either vocabulary.
INTENT_TO_FULFILLMENT: dict[str, str] = {
    "price_check": "check_item_price",
    "store_location": "find_the_store",
    "inventory_check": "retail_inventory_check",
    "weather.weather": "weather",
    "weather.temperature": "temperature",
    "weather.temperature_yes_no": "tempyesno",
    "weather.sunny": "sunny",
    "weather.cloudy": "cloudy",
    "weather.rainfall": "rain",
    "weather.rainfall_yes_no": "rainfall",
    "weather.snow": "snow",
    "weather.snow_yes_no": "snowfall",
    "weather.humidity": "humidity",
    "weather.humidity_yes_no": "humidity",
}


def to_training_intent(label: str) -> str:
    """Flow label (or an already-training label) -> dict.intents.csv name; unknown -> 'unknown'."""
    if label in INTENT_TO_TRAINING:
        return INTENT_TO_TRAINING[label]
    if label in TRAINING_TO_INTENT:
        return label
    return INTENT_TO_TRAINING[NO_MATCH]


def to_flow_intent(label: str) -> str:
    """Training label (or an already-flow label) -> the flow label; unknown -> nomatch.none."""
    if label in TRAINING_TO_INTENT:
        return TRAINING_TO_INTENT[label]
    if label in INTENT_TO_TRAINING:
        return label
    return NO_MATCH


def fulfillment_intent(value: str) -> str:
    """A context `intent` as the providers understand it: flow labels are mapped, WP-7328's
    context values (`check_item_price`, `rainfall`, ...) pass unchanged."""
    return INTENT_TO_FULFILLMENT.get(value, value)


# ------------------------------------------------------------------------------------ slots

#: NARA's 26 slot types (dict.slots.csv lists B- then I- of each, in this order, `O` last).
#: Never reorder, only append before nothing: `O` stays last.
SLOT_TYPES: list[str] = [
    "store.type", "store.name", "store.status", "store.hour.start", "store.hour.end", "store.hour.day",
    "item.type", "item.name", "item.color", "item.size", "item.quantity",
    "location",
    "cost.high", "cost.average", "cost.low",
    "time.period_of_time",
    "rating.high", "rating.average", "rating.low",
    "interrogative.location", "interrogative.manner", "interrogative.time", "interrogative.personal",
    "interrogative", "verb", "article",
]
OUTSIDE = "O"

#: dict.slots.csv, in index order: B-x for every type, then I-x for every type, then O
#: (53 labels, `O` at index 52, as in WP-7328).
SLOT_LABELS: list[str] = [f"B-{t}" for t in SLOT_TYPES] + [f"I-{t}" for t in SLOT_TYPES] + [OUTSIDE]
SLOT_LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(SLOT_LABELS)}

#: Slot type -> context key. Types that map to None are tagged for training only
#: (interrogatives, verbs, articles) and never reach the context.
SLOT_TYPE_TO_CONTEXT_KEY: dict[str, str | None] = {
    "store.type": "store_type",
    "store.name": "store_name",
    "store.status": "store_status",
    "store.hour.start": "store_hours",
    "store.hour.end": "store_hours",
    "store.hour.day": "store_day",
    "item.type": "item",
    "item.name": "item",
    "item.color": "item_color",
    "item.size": "item_size",
    "item.quantity": "item_quantity",
    "location": "location",
    "cost.high": "sort",
    "cost.average": "sort",
    "cost.low": "sort",
    "time.period_of_time": "time",
    "rating.high": "sort",
    "rating.average": "sort",
    "rating.low": "sort",
    "interrogative.location": None,
    "interrogative.manner": None,
    "interrogative.time": None,
    "interrogative.personal": None,
    "interrogative": None,
    "verb": None,
    "article": None,
}

#: Context keys whose value is the slot *type* (a preference), not the surface text:
#: "the cheapest jeans" -> sort = "cost.low"; "the highest-rated sushi" -> sort = "rating.high".
VALUE_IS_TYPE: set[str] = {"sort"}

#: Context key -> the slot type to tag its surface text with when a turn is exported
#: and only the context slots are known (e.g. reviewed in the CSV as slots, not tags).
CONTEXT_KEY_TO_SLOT_TYPE: dict[str, str] = {
    "store_type": "store.type",
    "store_name": "store.name",
    "store_status": "store.status",
    "store_hours": "store.hour.start",
    "store_day": "store.hour.day",
    "item": "item.type",
    "item_color": "item.color",
    "item_size": "item.size",
    "item_quantity": "item.quantity",
    "location": "location",
    "time": "time.period_of_time",
}

#: The context keys an NLU backend may fill (the engine knows these are set by the NLU).
CONTEXT_SLOT_KEYS: set[str] = {k for k in SLOT_TYPE_TO_CONTEXT_KEY.values() if k}

#: Slots that describe only the current question and are cleared when a new question is
#: asked; the others (location above all) are remembered for the next question.
TURN_SCOPED_KEYS: set[str] = {"time", "sort", "item_color", "item_size", "item_quantity", "store_status",
                              "store_hours", "store_day"}

# -------------------------------------------------------------------------------- tokenizing

_TOKEN = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def normalize(text: str) -> str:
    """Lower case, accents folded, curly quotes straightened."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.replace("\u2019", "'").replace("\u2018", "'").lower()


def tokenize(text: str) -> list[str]:
    """The tokens of a query as the training files write them: lower case, no punctuation,
    hyphenated words and contractions kept whole ("highest-rated", "what's")."""
    return _TOKEN.findall(normalize(text))


# ------------------------------------------------------------------------- tags <-> slots


def slots_from_tags(tokens: list[str], tags: list[str]) -> dict[str, str]:
    """BIO tags over tokens -> context slots. The first span of each context key wins;
    `sort` gets the slot type as its value."""
    slots: dict[str, str] = {}
    span_type: str | None = None
    span: list[str] = []

    def close() -> None:
        if span_type is None or not span:
            return
        key = SLOT_TYPE_TO_CONTEXT_KEY.get(span_type)
        if key and key not in slots:
            slots[key] = span_type if key in VALUE_IS_TYPE else " ".join(span)

    for token, tag in zip(tokens, tags):
        if tag.startswith("B-") or (tag.startswith("I-") and tag[2:] != span_type):
            close()
            span_type, span = tag[2:], [token]
        elif tag.startswith("I-"):
            span.append(token)
        else:
            close()
            span_type, span = None, []
    close()
    return slots


def tags_from_spans(tokens: list[str], spans: list[tuple[int, int, str]]) -> list[str]:
    """(start, end-exclusive, slot type) spans over tokens -> BIO tags."""
    tags = [OUTSIDE] * len(tokens)
    for start, end, slot_type in spans:
        for i in range(start, min(end, len(tokens))):
            tags[i] = ("B-" if i == start else "I-") + slot_type
    return tags


def tags_from_slots(tokens: list[str], slots: dict[str, str]) -> list[str]:
    """Context slots -> BIO tags, by finding each slot's surface text in the tokens.
    Slots whose text is not found (or that hold a type, like `sort`) are left untagged."""
    spans: list[tuple[int, int, str]] = []
    taken: set[int] = set()
    for key, value in slots.items():
        slot_type = CONTEXT_KEY_TO_SLOT_TYPE.get(key)
        if slot_type is None or not value:
            continue
        needle = tokenize(str(value))
        n = len(needle)
        if not n:
            continue
        for i in range(len(tokens) - n + 1):
            if tokens[i:i + n] == needle and not taken.intersection(range(i, i + n)):
                spans.append((i, i + n, slot_type))
                taken.update(range(i, i + n))
                break
    return tags_from_spans(tokens, spans)


def check_tags(tags: list[str]) -> list[str]:
    """The tags that are not labels of dict.slots.csv (empty when all are valid)."""
    return [t for t in tags if t not in SLOT_LABEL_INDEX]
