"""PII redaction (nlp/pii): recall on a generated set of written and spoken PII, no false
positives on PII-free support sentences full of numbers, the three modes, word-level redaction."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from callsense.core.settings import Settings
from callsense.nlp.pii import PiiRedactor, luhn_valid, redact_words
from callsense.nlp.pii.corpus import clean_sentences, pii_cases


def _covered(spans, start, end, text) -> bool:
    """Every letter and digit of text[start:end] lies in a redacted span."""
    return all(any(a <= i < b for _, a, b in spans) for i in range(start, end) if text[i].isalnum())


def test_recall_and_precision_on_the_generated_set():
    redactor = PiiRedactor("mask")
    cases = pii_cases()
    instances = [(c, p) for c in cases for p in c.pii]
    assert len(instances) >= 500
    spoken = [(c, p) for c, p in instances if any(w in p[3].split() for w in ("one", "two", "oh", "zero", "dot", "at", "five"))]
    assert len(spoken) >= 200, "the set must hold spoken forms too"
    found = {id(c): redactor.find(c.text) for c in cases}
    missed = [(c.text, p) for c, p in instances if not _covered(found[id(c)], p[1], p[2], c.text)]
    recall = 1 - len(missed) / len(instances)
    assert recall >= 0.99, f"recall {recall:.3f}; missed e.g. {missed[:5]}"
    typed = sum(any(k == p[0] and a < p[2] and b > p[1] for k, a, b in found[id(c)]) for c, p in instances)
    assert typed / len(instances) >= 0.97
    predicted = [(c, s) for c in cases for s in found[id(c)]]
    false = [(c.text, s) for c, s in predicted if not any(s[1] < p[2] and s[2] > p[1] for p in c.pii)]
    clean_hits = [(t, s) for t in clean_sentences() for s in redactor.find(t)]
    precision = 1 - (len(false) + len(clean_hits)) / (len(predicted) + len(clean_hits))
    assert precision >= 0.98, (false[:5], clean_hits[:5])


@pytest.mark.parametrize("text", clean_sentences())
def test_no_redaction_in_pii_free_support_sentences(text):
    assert PiiRedactor("mask").redact(text).text == text


@pytest.mark.parametrize("text, expected", [
    ("My card is 4111 1111 1111 1111, thanks.", "My card is [CARD], thanks."),
    ("It's four one one one, one one one one, one one one one, one one one one.", "It's [CARD]."),
    ("four one double one, one one one one dash triple one one dash one one one one", "[CARD]"),
    ("4111-1111-1111-1111", "[CARD]"),
    ("Call me at (212) 555-0147 or +44 20 7946 0958.", "Call me at [PHONE] or [PHONE]."),
    ("my number is two one two, five five five, oh one four seven", "my number is [PHONE]"),
    ("one eight hundred five five five one two three four", "[PHONE]"),
    ("email john dot smith at example dot com please", "email [EMAIL] please"),
    ("it's john.smith@example.com.", "it's [EMAIL]."),
    ("My account number is 12345678.", "My account number is [ACCOUNT]."),
    ("account number seven seven two oh one nine", "account number [ACCOUNT]"),
    ("member ID AB1234567", "member ID [ACCOUNT]"),
    ("I live at 123 Main Street, Apt 4B.", "I live at [ADDRESS]."),
    ("one twenty three Maple Avenue", "[ADDRESS]"),
    ("Oh, five five five one two three four", "Oh, [PHONE]"),
])
def test_written_and_spoken_forms(text, expected):
    assert PiiRedactor("mask").redact(text).text == expected


def test_a_16_digit_number_that_fails_luhn_is_no_card():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    spans = PiiRedactor().find("it's 4111 1111 1111 1112")
    assert [k for k, _, _ in spans] == ["ACCOUNT"]  # still redacted: a long digit run


def test_modes():
    text = "Card 4111 1111 1111 1111 and mail jo@example.com."
    assert PiiRedactor("off").redact(text).text == text
    assert PiiRedactor("mask").redact(text).text == "Card [CARD] and mail [EMAIL]."
    removed = PiiRedactor("remove").redact(text)
    assert removed.text == "Card and mail."
    assert [k for k, _, _ in removed.spans] == ["CARD", "EMAIL"]
    with pytest.raises(ValueError):
        PiiRedactor("hide")


def test_the_setting_defaults_to_mask_and_reads_its_env_var(monkeypatch):
    assert Settings().pipeline.pii_redaction == "mask"
    monkeypatch.setenv("CALLSENSE_PII_REDACTION", "remove")
    assert Settings().pipeline.pii_redaction == "remove"


@dataclass
class W:
    text: str
    start: float
    end: float
    probability: float = 1.0


def _words(text: str) -> list[W]:
    return [W(" " + t, float(i), i + 0.5) for i, t in enumerate(text.split())]


def test_words_of_a_span_become_one_masked_word_spanning_their_times():
    words = _words("my card is four one one one, 1111 1111 1111. thanks")
    out = redact_words(words, PiiRedactor("mask"))
    assert [w.text.strip() for w in out] == ["my", "card", "is", "[CARD].", "thanks"]
    card = out[3]
    assert (card.start, card.end) == (3.0, 9.5)
    assert redact_words(words, PiiRedactor("off")) == words
    removed = redact_words(words, PiiRedactor("remove"))
    assert [w.text.strip() for w in removed] == ["my", "card", "is.", "thanks"]


def test_a_span_inside_one_long_word_keeps_the_rest():
    out = redact_words([W("call me on 212 555 0147 please", 0.0, 3.0)], PiiRedactor("mask"))
    assert [w.text for w in out] == ["call me on [PHONE] please"]


def test_interim_text_masks_numbers_cut_short():
    """Live interim text may stop in the middle of a card number: no run of digits is shown."""
    r = PiiRedactor("mask")
    assert r.redact_partial("my card is four one one one two two").text == "my card is [NUMBER]"
    assert r.redact_partial("call me at five five five").text == "call me at [NUMBER]"
    assert r.redact_partial("my card is 4111 1111 1111 1111 and").text == "my card is [CARD] and"
    assert r.redact_partial("I have two kids and 12 cats").text == "I have two kids and 12 cats"
    assert PiiRedactor("remove").redact_partial("my card is four one one one two").text == "my card is"
    assert PiiRedactor("off").redact_partial("four one one one").text == "four one one one"
