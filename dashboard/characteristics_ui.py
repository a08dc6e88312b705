"""Streamlit pieces for call characteristics (talk speed, loudness, silences, interruptions)
and categories / alerts, shared by the Call, Live and Agents pages."""

from __future__ import annotations

import html
from typing import Sequence

import streamlit as st

from callsense.dashboard import ui
from callsense.nlp.characteristics import CallCharacteristics
from callsense.store.schema import CallCategory

CATEGORY_CSS = """<style>
.cs-cats{display:flex;flex-wrap:wrap;gap:6px;margin:2px 0 6px 0}
.cs-cat{display:inline-block;padding:2px 10px;border-radius:12px;font-size:0.85rem;
        background:#fff4e5;border:1px solid #f0a04b;color:#7a3e00}
</style>"""


def categories_html(cats: Sequence[CallCategory], *, prefix: str = "") -> str:
    if not cats:
        return ""
    chips = "".join(
        f'<span class="cs-cat" data-category="{html.escape(c.category)}">{prefix}{html.escape(c.category)}'
        + (f" · {ui.clock(c.start)}" if c.start is not None else "") + "</span>" for c in cats)
    return CATEGORY_CSS + f'<div class="cs-cats">{chips}</div>'


def render_categories(cats: Sequence[CallCategory], *, prefix: str = "") -> None:
    if cats:
        st.html(categories_html(cats, prefix=prefix))


def speaker_rows(ch: CallCharacteristics) -> list[dict]:
    rows = []
    for sp in sorted(ch.speakers.values(), key=lambda s: (s.speaker != "agent", s.speaker)):
        rows.append({
            "speaker": sp.speaker,
            "talk": ui.clock(sp.talk_s),
            "words": sp.words,
            "words/min": sp.wpm,
            "loudness (dBFS)": sp.loudness_dbfs,
            "interrupted others": sp.interruptions,
            "was interrupted": sp.interrupted,
        })
    return rows


def render_characteristics(ch: CallCharacteristics) -> None:
    st.subheader("Call characteristics")
    longest = ch.longest_silence
    m = st.columns(3)
    m[0].metric("Non-talk time", ui.clock(ch.silence_s),
                f"{ch.silence_share:.0%} of the call" if ch.silence_share is not None else None,
                delta_color="off", delta_arrow="off")
    m[1].metric("Longest silence", f"{longest.length:.1f} s" if longest else "-",
                f"from {ui.clock(longest.start)}" if longest else None, delta_color="off", delta_arrow="off")
    m[2].metric("Interruptions", len(ch.interruptions))
    rows = speaker_rows(ch)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="call.characteristics",
                     column_config={"words/min": st.column_config.NumberColumn(format="%.0f"),
                                    "loudness (dBFS)": st.column_config.NumberColumn(
                                        format="%.1f", help="RMS level of the speaker's sentences; "
                                                            "empty when the audio was not at hand")})
    matrix = ch.interruption_matrix()
    if matrix:
        st.caption("Who interrupted whom: " + ", ".join(f"{by} → {of}: {n}" for (by, of), n in sorted(matrix.items())))
