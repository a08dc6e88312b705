"""PII redaction of transcripts (see `redactor.py`): `PiiRedactor(mode).redact(text)`."""

from callsense.nlp.pii.redactor import (
    KINDS, MASKS, MODES, PiiRedactor, RedactedText, TimedSpan, luhn_valid, redact_timed_words, redact_words,
)

__all__ = ["KINDS", "MASKS", "MODES", "PiiRedactor", "RedactedText", "TimedSpan", "luhn_valid", "redact_timed_words",
           "redact_words"]
