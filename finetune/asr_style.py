"""Text as a speech recognizer writes it, for training a sentiment model that holds up on transcripts.

MELD's text carries what recognizers rarely write: "!" (spoken with no mark at all), "?"
(often written as a full stop), dashes and ellipses, stretched interjections ("Ohhh",
"Noooo"), and it never has a misheard word. A model trained on MELD alone learns that "!"
means positive or negative and that a full stop means neutral, so on recognised speech it
falls back to neutral (issue 14: macro-F1 0.67 on reference text, 0.49 on the stored
sentences of the same turns).

`render(text, rng)` returns one recognizer-like rendering of a sentence: punctuation
re-written the way the embedded engines write it (or dropped), stretched words squeezed,
contractions spelled out or joined, and a few recognition-like word errors (a short word
dropped, a homophone). The sentiment job draws a rendering per row and epoch
(`--asr-style P`); the renderings are a pure function of the text and a seeded
`random.Random`, so a run is reproducible.
"""

from __future__ import annotations

import random
import re

# Words a recognizer confuses with each other (both directions used).
HOMOPHONES = [
    ("to", "too"), ("to", "two"), ("there", "their"), ("there", "they're"), ("your", "you're"), ("its", "it's"),
    ("no", "know"), ("right", "write"), ("here", "hear"), ("for", "four"), ("one", "won"), ("then", "than"),
    ("were", "where"), ("we're", "were"), ("by", "bye"), ("so", "sew"), ("weather", "whether"), ("hey", "hay"),
    ("okay", "ok"), ("yeah", "yes"), ("oh", "o"), ("ah", "oh"), ("uh", "a"), ("um", "uhm"), ("and", "an"),
    ("gonna", "going to"), ("wanna", "want to"), ("gotta", "got to"), ("kinda", "kind of"), ("ya", "you"),
]
CONTRACTIONS = {
    "i'm": "i am", "you're": "you are", "we're": "we are", "they're": "they are", "it's": "it is",
    "that's": "that is", "what's": "what is", "don't": "do not", "doesn't": "does not", "didn't": "did not",
    "can't": "cannot", "won't": "will not", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
    "i'll": "i will", "you'll": "you will", "i've": "i have", "i'd": "i would", "let's": "let us",
    "he's": "he is", "she's": "she is", "there's": "there is", "couldn't": "could not", "wouldn't": "would not",
}
SHORT_WORDS = frozenset("a an the and so oh uh um well just i you it that to of is".split())

_CONFUSIONS: dict[str, list[str]] = {}
for _a, _b in HOMOPHONES:
    _CONFUSIONS.setdefault(_a, []).append(_b)
    _CONFUSIONS.setdefault(_b, []).append(_a)
_JOIN = {v: k for k, v in CONTRACTIONS.items()}
_STRETCH = re.compile(r"([a-z])\1{2,}", re.IGNORECASE)
_RUNS = re.compile(r"[.,?](?:\s*[.,?])+")
_WORD = re.compile(r"[A-Za-z']+|[0-9]+|[^\sA-Za-z0-9']")


def _punctuation(text: str, rng: random.Random) -> str:
    """The marks as a recognizer writes them: '!' mostly a full stop or nothing, '?' kept
    about half the time, dashes and ellipses a comma, a full stop or nothing; or no marks at all."""
    mode = rng.random()
    if mode < 0.25:  # some engines (and lower-cased live text) write no punctuation
        return re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"\.{2,}|\u2026|--+|\u2014", lambda _: rng.choice([",", ".", " "]), text)
    text = re.sub(r"!+", lambda _: rng.choice([".", ".", ".", ",", ""]), text)
    text = re.sub(r"\?+", lambda _: rng.choice(["?", "?", ".", ""]), text)
    text = re.sub(r"[\"*()\[\]]", " ", text)
    if rng.random() < 0.5 and not re.search(r"[.?,]\s*$", text):
        text = text.rstrip() + "."
    return text


def _words(text: str, rng: random.Random, error_rate: float) -> str:
    tokens = _WORD.findall(text)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower()
        if low.isalpha() or "'" in low:
            if rng.random() < error_rate * 0.4 and low in SHORT_WORDS and len(tokens) > 2:
                i += 1  # a short word the recognizer missed
                continue
            if rng.random() < error_rate * 0.6 and low in _CONFUSIONS:
                tok = rng.choice(_CONFUSIONS[low])
            elif low in CONTRACTIONS and rng.random() < 0.3:
                tok = CONTRACTIONS[low]
            elif i + 1 < len(tokens) and f"{low} {tokens[i + 1].lower()}" in _JOIN and rng.random() < 0.3:
                tok = _JOIN[f"{low} {tokens[i + 1].lower()}"]
                i += 1
        out.append(tok)
        i += 1
    joined = ""
    for tok in out:
        joined += tok if (not joined or re.fullmatch(r"[.,?!;:]", tok)) else " " + tok
    return joined


def render(text: str, rng: random.Random, *, error_rate: float = 0.08) -> str:
    """One recognizer-like rendering of `text` (see the module docstring)."""
    if rng.random() < 0.8:
        text = _STRETCH.sub(r"\1", text)  # "Ohhh" -> "Oh": a recognizer writes the word, not the drawl
    text = _punctuation(text, rng)
    text = _words(text, rng, error_rate)
    if rng.random() < 0.5:
        text = text.lower()
    text = _RUNS.sub(lambda m: "?" if "?" in m.group(0) else "." if "." in m.group(0) else ",", text)
    text = " ".join(text.split())
    return text or "."


def renderings(texts: list[str], count: int, seed: int) -> list[list[str]]:
    """`count` renderings of every text, reproducible from `seed` (one Random per text and seed,
    so adding rows does not change the renderings of the others)."""
    out = []
    for text in texts:
        rng = random.Random(f"{seed}:{text}")
        out.append([render(text, rng) for _ in range(count)])
    return out
