"""Training text rendered as a recognizer writes it (`finetune/asr_style.py`), and the job option that uses it."""

from __future__ import annotations

import random
import re

from callsense.finetune.asr_style import render, renderings

SENTENCES = ["You can do it!", "We're in a relationship?", "Ohhh, I am so sorry... -- really!",
             "What the hell is going on here?!", "Noooo!", "I don't know."]


def test_renderings_are_reproducible_per_text_and_seed():
    a = renderings(SENTENCES, 4, seed=3)
    assert a == renderings(SENTENCES, 4, seed=3)
    assert a != renderings(SENTENCES, 4, seed=4)
    # a row's renderings do not depend on the other rows
    assert renderings(SENTENCES[2:3], 4, seed=3)[0] == a[2]


def test_renderings_lose_what_speech_loses_and_keep_the_words():
    rng = random.Random(0)
    out = [render(s, rng) for s in SENTENCES * 50]
    assert all(o.strip() for o in out)
    assert not any("!" in o for o in out), "recognizers do not write exclamation marks"
    assert not any(re.search(r"[.,?]\s*[.,?]", o) for o in out), "no runs of marks"
    assert any("?" in o for o in out) and any(not o.endswith("?") for o in out if "relationship" in o)
    assert sum("ohhh" in o.lower() for o in out) < sum("oh" in o.lower() for o in out)
    # the words survive most of the time: recognition-like errors are rare
    kept = sum("relationship" in o for o in out if "relation" in o or "we" in o.lower())
    assert kept >= 45
    assert any(o.islower() for o in out) and any(not o.islower() for o in out)
