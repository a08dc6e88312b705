"""Interim text on the Live page: the words of an utterance still being spoken, greyed,
until its final sentences (with their sentiment) are stored and replace it.

The dashboard reads interims from Kafka itself (`callsense.ingest.interim.InterimFeed`, one
per dashboard process, no consumer group); see that module for why nothing is stored.
"""

from __future__ import annotations

import html
from typing import Sequence

import streamlit as st

from callsense.core.settings import Settings
from callsense.ingest.interim import InterimFeed
from callsense.store.schema import Sentence

INTERIM_CSS = ('<style>.cs-interim{color:#8a8f98;font-style:italic;margin:4px 0;}'
               '.cs-interim .cs-meta{font-size:0.8em;}</style>')


@st.cache_resource(show_spinner=False)
def _feed(bootstrap: str, prefix: str, _settings: Settings) -> InterimFeed:
    return InterimFeed(_settings)


def interim_feed(settings: Settings) -> InterimFeed | None:
    if settings.pipeline.live_interim_ms <= 0:
        return None
    return _feed(settings.pipeline.kafka_bootstrap, settings.pipeline.topic_prefix, settings)


def interim_html(settings: Settings, call_id: str, sentences: Sequence[Sentence]) -> str:
    """The greyed lines of the call's open utterances ('' when there are none)."""
    feed = interim_feed(settings)
    if feed is None:
        return ""
    stored: dict[int, int] = {}
    for s in sentences:
        stored[s.channel] = max(stored.get(s.channel, -1), s.utterance_idx)
    lines = [f'<div class="cs-interim" data-channel="{ev.channel}" data-utterance="{ev.index}">'
             f'<span class="cs-meta">{html.escape(ev.speaker)} …</span> {html.escape(ev.text)}</div>'
             for ev in feed.of_call(call_id, stored)]
    return INTERIM_CSS + "".join(lines) if lines else ""
