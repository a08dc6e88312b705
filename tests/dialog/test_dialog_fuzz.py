"""10,000 random inputs (empty, very long, unicode, SQL and template injection, control
characters, real questions cut and mixed) across many sessions: every turn gets a
non-empty reply and nothing raises. A fixed seed makes any failure reproducible."""

from __future__ import annotations

import random
import time

from sqlalchemy import func, select

from callsense.dialog.conversation_tests import SwitchableNlu
from callsense.store.db import make_engine
from callsense.store.dialog_tables import DialogTurn

SEED = 20250602
TURNS = 10_000

QUESTIONS = [
    "what's the weather?", "Los Angeles", "will it rain next week in Los Angeles?", "how much is laptop memory",
    "nearest Thai food", "the highest-rated sushi restaurant", "jeans with the lowest price", "Seattle",
    "do you have airpods in stock", "is it going to snow in Chicago this weekend", "how much does it cost?",
    "give me directions", "where can I get the best pasta", "what's the humidity in Miami", "airpods",
]
HOSTILE = [
    "'; DROP TABLE dialog_turns; --", "\" OR 1=1 --", "Robert'); DELETE FROM catalog_items;--", "1; SELECT * FROM sqlite_master",
    "{{jarvis_error}}", "{{ user_text }}", "{{__class__.__mro__}}", "{% for x in y %}{{x}}{% endfor %}", "${7*7}",
    "#{7*7}", "%s %s %d %n", "{0.__class__}", "<script>alert(1)</script>", "\x00\x01\x02", "\u202eevil\u202c",
    "\ud800", "🌧️☔ in 東京?", "Zalgo: ḩ̸̢̛̼̹̫͔e̵͚̙ ̴̳̈́c̶̟̏o̴̬͑m̷̜̑ḛ̶̈s̴̞̓", "NaN", "None", "null", "-1e309", "\n\n\t  ",
    "ﷺ" * 50, "a" * 200_000, " ".join(["rain"] * 5_000), "\r\n".join(QUESTIONS),
]
ALPHABETS = ["abcdefghijklmnopqrstuvwxyz     ", "0123456789.,;:!?'\"-()[]{}<>/\\|@#$%^&*_=+~`",
             "äöüßéèêçñãõåøæœ", "αβγδεζηθικλμνξοπρστυφχψω", "абвгдежзийклмнопрстуфхцчшщъыьэюя",
             "日本語中文한국어ไทยالعربيةעברית", "😀🌧️☔🛒🍣👖💾🌡️❄️", "\x00\x07\x1b\x7f\u200b\u200d\ufeff"]


def random_input(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.08:
        return ""
    if kind < 0.35:
        return rng.choice(QUESTIONS)
    if kind < 0.55:
        return rng.choice(HOSTILE)
    if kind < 0.75:  # a real question, cut and mixed with noise
        q = rng.choice(QUESTIONS)
        cut = rng.randrange(len(q) + 1)
        noise = "".join(rng.choice(rng.choice(ALPHABETS)) for _ in range(rng.randrange(12)))
        return q[:cut] + noise + q[cut:] if rng.random() < 0.5 else noise + " " + rng.choice(HOSTILE)[:40]
    length = rng.choice([1, 3, 10, 40, 200, 2_000, 50_000])
    alphabet = rng.choice(ALPHABETS)
    return "".join(rng.choice(alphabet) for _ in range(min(length, 3_000))) * max(1, length // 3_000)


def test_ten_thousand_random_inputs_always_get_a_reply(dialog_settings, keywords_nlu):
    from datetime import date

    from callsense.dialog.assistant import Assistant

    rng = random.Random(SEED)
    db = make_engine("sqlite://")  # in memory: this test is about the engine, not the disk
    nlu = SwitchableNlu(keywords_nlu)
    assistant = Assistant(dialog_settings, nlu=nlu, db=db, seed=SEED, today=lambda: date(2025, 6, 2))
    sessions = [f"fuzz-{i}" for i in range(40)]
    started = time.perf_counter()
    try:
        for i in range(TURNS):
            text = random_input(rng)
            nlu.down = rng.random() < 0.02
            session = rng.choice(sessions)
            reply = assistant.reply(session, text)
            assert isinstance(reply.text, str) and reply.text.strip(), f"turn {i}: empty reply to {text[:80]!r}"
            assert reply.state in assistant.flows.states, f"turn {i}: state {reply.state}"
            assert "{{" not in reply.text or "{{" in text, f"turn {i}: a template leaked: {reply.text!r}"
            assert reply.error is None or reply.error.startswith("nlu:"), f"turn {i}: {reply.error} for {text[:80]!r}"
    finally:
        nlu.down = False
    elapsed = time.perf_counter() - started
    with db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(DialogTurn)).scalar_one() == TURNS
    assistant.close()
    db.dispose()
    print(f"{TURNS} random turns in {elapsed:.1f} s ({elapsed / TURNS * 1000:.2f} ms per turn)")
