"""Category rules: parsing with file and line, and evaluation over typed sentences."""

from __future__ import annotations

import pytest

from callsense.nlp.categories import CategoryRulesError, evaluate, load_rules, parse_rules
from callsense.nlp.characteristics import Spoken

RULES = """\
categories:
  - name: escalation-asked
    match: {any: [{phrase: "speak to a manager"}, {phrase: "supervisor"}], speaker: customer}
  - name: cancellation-threat
    match: {all: [{phrase: "cancel"}, {not: {phrase: "don't cancel"}}]}
  - name: negative-ending
    match: {sentiment: negative, last_seconds: 60, speaker: customer, min_share: 0.5}
  - name: long-hold
    match: {silence_longer_than_s: 60}
  - name: price-near-high
    match: {near: ["price", "too high"], within_words: 3}
  - name: agent-talks-over
    match: {interruptions_at_least: 2, speaker: agent}
  - name: agent-dominates
    match: {talk_share_above: 0.7, speaker: agent}
  - name: negative-start
    match: {sentiment: negative, first_seconds: 30, speaker: customer, min_count: 2}
"""


def names(ms):
    return {m.category for m in ms}


def call(*rows):
    return [Spoken(*r) for r in rows]


@pytest.fixture
def rules():
    return parse_rules(RULES, "rules.yaml")


def test_phrases_are_case_insensitive_whole_words_with_speaker_scope(rules):
    got = evaluate(rules, call(("customer", 0, 2, "Can I speak to a MANAGER, please?", "neutral"),
                               ("agent", 3, 4, "Our supervisors are busy.", "neutral")), 10)
    assert names(got) == {"escalation-asked"}
    assert got[0].position == 0 and got[0].at == 0
    # "supervisors" is not "supervisor"; and the agent saying it does not count.
    assert "escalation-asked" not in names(evaluate(rules, call(("agent", 0, 2, "My supervisor says no.", "neutral")), 5))


def test_not_and_all(rules):
    assert "cancellation-threat" in names(evaluate(rules, call(("customer", 0, 2, "I will cancel.", "negative")), 5))
    assert "cancellation-threat" not in names(evaluate(rules, call(("customer", 0, 2, "Please don't cancel it.", "neutral")), 5))
    assert "cancellation-threat" not in names(evaluate(rules, call(("customer", 0, 2, "Please don’t cancel it.", "neutral")), 5))


def test_sentiment_in_the_last_seconds_waits_for_the_end_of_a_live_call(rules):
    ss = call(("customer", 0, 5, "Fine.", "positive"), ("customer", 100, 105, "This is awful.", "negative"),
              ("customer", 110, 112, "Bye.", "neutral"))
    assert "negative-ending" in names(evaluate(rules, ss, 115))
    assert "negative-ending" not in names(evaluate(rules, ss, None, final=False))
    ss2 = ss + call(("customer", 113, 114, "Thanks.", "positive"))
    assert "negative-ending" not in names(evaluate(rules, ss2, 115))  # 1 of 3 in the last minute


def test_first_seconds_min_count_silence_near_interruptions_and_talk_share(rules):
    ss = call(("customer", 0, 3, "No.", "negative"), ("customer", 4, 6, "No!", "negative"),
              ("agent", 5, 50, "the price is honestly not too high at all", "neutral"),
              ("agent", 130, 130.8, "thanks for holding", "neutral"),
              ("customer", 131, 132, "ok", "neutral"), ("agent", 135, 136, "so", "neutral"),
              ("customer", 137, 139, "wait", "neutral"), ("agent", 138, 138.5, "yes", "neutral"))
    got = {m.category: m for m in evaluate(rules, ss, 141)}
    assert got["negative-start"].position == 1
    assert got["long-hold"].at == 130 and got["long-hold"].position == 3
    assert "price-near-high" in got  # 'price' and 'too high' are 3 words apart
    assert "price-near-high" not in names(evaluate(parse_rules(RULES.replace("within_words: 3", "within_words: 2")), ss, 141))
    assert "agent-dominates" in got
    assert "agent-talks-over" in got


def test_live_alert_position_is_the_sentence_that_made_the_rule_match(rules):
    ss = call(("agent", 0, 2, "Hello.", "neutral"), ("customer", 3, 5, "I want a supervisor now.", "negative"))
    got = evaluate(rules, ss, None, final=False)
    assert [(m.category, m.position, m.at) for m in got] == [("escalation-asked", 1, 3)]


def test_errors_name_file_line_and_nearest_key():
    text = ("categories:\n"
            "  - name: a\n"
            "    match: {phrse: refund}\n"
            "  - name: b\n"
            "    match:\n"
            "      sentiment: angry\n"
            "  - name: a\n"
            "    match: {silence_longer_than_s: -1}\n"
            "  - name: c\n"
            "    mach: {phrase: x}\n")
    with pytest.raises(CategoryRulesError) as e:
        parse_rules(text, "my-rules.yaml")
    lines = [str(p) for p in e.value.problems]
    assert "my-rules.yaml:3: category 'a': unknown match key 'phrse' (did you mean 'phrase'?)" in lines[0]
    assert lines[1].startswith("my-rules.yaml:6: category 'b': sentiment 'angry' is not a label")
    assert any(l.startswith("my-rules.yaml:8:") and "'silence_longer_than_s' must be at least 0" in l for l in lines)
    assert any(l.startswith("my-rules.yaml:10:") and "did you mean 'match'?" in l for l in lines)


def test_invalid_yaml_and_unreadable_files(tmp_path):
    with pytest.raises(CategoryRulesError, match=r"r.yaml:\d: invalid YAML"):
        parse_rules("categories:\n  - name: a\n    match: {phrase: [x\n", "r.yaml")
    with pytest.raises(CategoryRulesError, match="cannot read the file"):
        load_rules(tmp_path / "missing.yaml")


def test_the_default_rules_ship_with_the_package():
    rules = load_rules()
    assert rules.names == ["escalation-asked", "cancellation-threat", "refund", "long-hold", "negative-ending"]
    ss = call(("agent", 0, 2, "I have issued a refund.", "positive"),
              ("customer", 3, 5, "Otherwise I would cancel my contract.", "negative"))
    assert names(evaluate(rules, ss, 10)) >= {"refund", "cancellation-threat"}
