"""Interim text on the Live page in headless Chromium: an interim of a live call's open
utterance (an `InterimTranscript` on `<prefix>.interim`, as the segment stage publishes it)
shows greyed under the call's transcript, then gives way to the final sentence with its
sentiment once the store has it. The dashboard reads the interim topic itself
(`callsense.ingest.interim`)."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from callsense.core.events import InterimTranscript
from callsense.core.settings import Settings
from callsense.dashboard import demo
from callsense.ingest.results import result_rows
from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

from dash_support import add_users, make_dash_store, serve_dashboard
from test_browser import browser, no_exceptions, page, shot, sign_in  # noqa: F401  (fixtures)

GREY = "rgb(138, 143, 152)"  # dashboard/interim_ui.py's colour of interim lines


@pytest.mark.kafka
def test_an_interim_line_shows_greyed_then_the_final_sentence_replaces_it(kafka_bootstrap, page, tmp_path):  # noqa: F811
    ds = make_dash_store(tmp_path / "data")
    add_users(ds.engine)
    prefix = f"i{uuid.uuid4().hex[:8]}"
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, kafka_partitions=2)
    ensure_topics(settings)
    env = {**ds.env, "CALLSENSE_KAFKA_BOOTSTRAP": kafka_bootstrap, "CALLSENSE_TOPIC_PREFIX": prefix}

    # A live call in progress with its first sentence stored; the second utterance is still being spoken.
    rng = random.Random(5)
    opened, first, second, *_ = demo.call_events("live-interim", demo.script_turns("billing", rng), agent_id="ag-1",
                                                 started_at=time.time(), mode="live", source_name="Interim call (live)", rng=rng)
    ds.store.apply(result_rows([opened, first]))
    interim_text = "so far the words of the turn still spoken"
    publisher = KafkaPublisher(settings)
    try:
        with serve_dashboard(env, tmp_path / "dash.log") as served:
            sign_in(page, served.url, "maria")
            page.get_by_role("heading", name="Interim call (live)").wait_for()
            page.wait_for_function("t => document.body.innerText.includes(t)", arg=first.sentences[0].text, polling=100)
            publisher.publish([InterimTranscript(call_id="live-interim", channel=second.channel, speaker=second.speaker,
                                                 index=second.index, text=interim_text, start=second.start,
                                                 end=second.start + 1.0, seq=1)])
            publisher.flush()
            line = page.locator(".cs-interim", has_text=interim_text)
            line.wait_for()
            assert line.evaluate("e => getComputedStyle(e).color") == GREY
            assert line.evaluate("e => getComputedStyle(e).fontStyle") == "italic"
            shot(page, "07-live-interim")

            # The final utterance is stored: its sentence (with sentiment) replaces the interim line.
            ds.store.apply(result_rows([second]))
            final = second.sentences[0]
            page.wait_for_function("t => document.body.innerText.includes(t)", arg=final.text, polling=100)
            line.wait_for(state="detached")
            bubble = page.locator(".cs-row", has_text=final.text)
            assert bubble.get_attribute("data-sentiment") == final.sentiment.label
            no_exceptions(page)
    finally:
        publisher.close()
