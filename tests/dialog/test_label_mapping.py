"""labels.py: the one mapping between flow labels, context keys and NeMo training labels."""

from __future__ import annotations

from callsense.dialog.flows import RETAIL_ASSISTANT_DIR, load_flows
from callsense.dialog.nlu import labels


def test_training_dictionaries_follow_wp7328():
    assert len(labels.SLOT_TYPES) == 26
    assert len(labels.SLOT_LABELS) == 53 and labels.SLOT_LABELS[52] == "O"
    assert labels.SLOT_LABELS[0] == "B-store.type" and labels.SLOT_LABELS[26] == "I-store.type"
    assert labels.TRAINING_INTENTS[:2] == ["price_check", "find_the_store"]
    assert "unknown" in labels.TRAINING_INTENTS and labels.NLU_ERROR not in labels.TRAINING_INTENTS
    assert len(set(labels.TRAINING_INTENTS)) == len(labels.TRAINING_INTENTS)


def test_flow_and_training_intents_map_both_ways():
    assert labels.to_training_intent("store_location") == "find_the_store"
    assert labels.to_training_intent("nomatch.none") == "unknown"
    assert labels.to_training_intent("find_the_store") == "find_the_store"
    assert labels.to_training_intent("something.else") == "unknown"
    assert labels.to_flow_intent("find_the_store") == "store_location"
    assert labels.to_flow_intent("unknown") == "nomatch.none"
    for flow_label in labels.FLOW_INTENTS:
        assert labels.to_flow_intent(labels.to_training_intent(flow_label)) == flow_label


def test_every_routed_intent_of_the_shipped_flows_is_a_known_label():
    flows = load_flows(RETAIL_ASSISTANT_DIR).require()
    assert set(flows.intent_transitions) <= set(labels.FLOW_INTENTS) | set(labels.RULE_INTENTS) | {labels.NLU_ERROR}
    assert set(labels.FLOW_INTENTS) <= set(flows.intent_transitions)
    # small talk is recognised by rules, never trained: an export labels it `unknown`
    assert set(labels.SMALL_TALK_INTENTS) <= set(flows.intent_transitions)
    assert {labels.to_training_intent(i) for i in labels.RULE_INTENTS} == {"unknown"}


def test_fulfillment_intents_accept_both_vocabularies():
    assert labels.fulfillment_intent("weather.rainfall_yes_no") == "rainfall"
    assert labels.fulfillment_intent("weather.rainfall") == "rain"
    assert labels.fulfillment_intent("rainfall") == "rainfall"
    assert labels.fulfillment_intent("store_location") == "find_the_store"


def test_tags_and_slots_round_trip():
    tokens = labels.tokenize("Where can I get the highest-rated sushi in Los Angeles next week?")
    assert tokens == ["where", "can", "i", "get", "the", "highest-rated", "sushi", "in", "los", "angeles", "next",
                      "week"]
    tags = labels.tags_from_spans(tokens, [(5, 6, "rating.high"), (6, 7, "store.type"), (8, 10, "location"),
                                           (10, 12, "time.period_of_time")])
    assert tags[8:10] == ["B-location", "I-location"] and labels.check_tags(tags) == []
    slots = labels.slots_from_tags(tokens, tags)
    assert slots == {"sort": "rating.high", "store_type": "sushi", "location": "los angeles", "time": "next week"}
    assert labels.tags_from_slots(tokens, {k: v for k, v in slots.items() if k != "sort"}) == \
        [t if "rating" not in t else "O" for t in tags]
    assert labels.check_tags(["B-location", "B-locaton"]) == ["B-locaton"]


def test_tokenize_folds_case_accents_and_punctuation():
    assert labels.tokenize("  Café in SÃO Paulo, what's   UP?! ") == ["cafe", "in", "sao", "paulo", "what's", "up"]
    assert labels.tokenize("") == [] and labels.tokenize("?!…") == []
