"""Split recognized words into sentences, keeping each sentence's time span."""

from __future__ import annotations

import re
from typing import Protocol, Sequence, TypeVar


class TimedWord(Protocol):
    """Any recognizer's word: its text (with or without a leading space) and its times."""

    text: str
    start: float
    end: float


RecognizedWord = TypeVar("RecognizedWord", bound=TimedWord)

_END = re.compile(r"[.!?]+[\"')\]]*$")
_ABBREV = {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no.", "jr.", "sr."}


def split_sentences(words: Sequence[RecognizedWord]) -> list[list[RecognizedWord]]:
    sentences: list[list[RecognizedWord]] = []
    current: list[RecognizedWord] = []
    for w in words:
        current.append(w)
        token = w.text.strip().lower()
        if _END.search(token) and token not in _ABBREV and not re.fullmatch(r"\d+\.", token):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [s for s in sentences if "".join(w.text for w in s).strip()]


def ends_sentence(text: str) -> bool:
    """Whether a text's last word ends a sentence (same rule as split_sentences)."""
    words = text.split()
    if not words:
        return False
    token = words[-1].strip().lower()
    return bool(_END.search(token)) and token not in _ABBREV and not re.fullmatch(r"\d+\.", token)


def join_words(words: Sequence[RecognizedWord]) -> str:
    # Whisper words carry their leading space; other engines' words may not.
    text = "".join(w.text if w.text[:1].isspace() else " " + w.text for w in words)
    return re.sub(r"\s+", " ", text).strip()
