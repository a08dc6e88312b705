"""The Call page of a chat or email conversation (mode `text`): no player, no attach hint,
the messages with their sentiment."""

from __future__ import annotations

import random
import time

from callsense.dashboard import demo
from callsense.ingest.results import result_rows

from test_pages import run_page, texts


def test_call_page_of_a_text_conversation_has_no_player(empty_store):
    turns = [demo.Turn("agent", "Hello, how can I help?", "neutral", 0.0, 1.0),
             demo.Turn("customer", "My parcel is late and I am upset.", "negative", 1.0, 2.0),
             demo.Turn("agent", "Sorry, a new one ships today.", "positive", 2.0, 3.0)]
    empty_store.store.apply(result_rows(demo.call_events("chat-1", turns, agent_id=None, started_at=time.time() - 60,
                                                         mode="text", source_name="chat.jsonl", rng=random.Random(1))))
    at = run_page(empty_store, "call", "maria", **{"call.selected": "chat-1"})
    assert at.title[0].value == "chat.jsonl"
    shown = texts(at)
    assert "no audio" in shown and "attach-audio" not in shown
    assert "My parcel is late" in shown
    assert not at.get("audio")
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("play-"))
