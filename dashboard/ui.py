"""Display pieces the pages share: sentiment colours, the coloured transcript, charts."""

from __future__ import annotations

import copy
import html
import re
import threading
import time
from collections import OrderedDict
from typing import Iterable, Sequence

import altair as alt
import pandas as pd
import streamlit as st

from callsense.dashboard.analytics import LABELS, sentiment_value
from callsense.store.schema import Sentence

# Text, background and border colour per sentiment (readable on the light theme).
SENTIMENT_COLORS = {
    "negative": ("#8a1c1c", "#fdecea", "#d64545"),
    "neutral": ("#37474f", "#f3f4f6", "#9aa5b1"),
    "positive": ("#1b5e20", "#e8f5e9", "#43a047"),
}
SENTIMENT_ICON = {"negative": "▼", "neutral": "●", "positive": "▲"}
SPEAKER_COLORS = {"agent": "#1f6feb", "customer": "#e07b00"}
LABEL_DOMAIN = list(LABELS)
LABEL_RANGE = [SENTIMENT_COLORS[label][2] for label in LABELS]

TRANSCRIPT_CSS = """
<style>
.cs-tr { font-size: 0.95rem; line-height: 1.35; }
.cs-row { display: flex; gap: .6rem; align-items: flex-start; margin: 0 0 .35rem 0; }
.cs-row.customer { flex-direction: row-reverse; }
.cs-meta { flex: 0 0 5.2rem; color: #6b7280; font-size: .78rem; padding-top: .35rem; }
.cs-row.customer .cs-meta { text-align: right; }
.cs-bubble { border-left: 4px solid; border-radius: .45rem; padding: .3rem .6rem; max-width: 78%; }
.cs-row.customer .cs-bubble { border-left: none; border-right: 4px solid; }
.cs-tag { font-size: .72rem; font-weight: 600; margin-left: .35rem; white-space: nowrap; }
.cs-fix { font-size: .72rem; color: #6b7280; margin-left: .35rem; }
.cs-flag { background: #fff4e5; border: 1px solid #f0a020; color: #7a4a00; border-radius: .4rem;
           padding: .25rem .55rem; font-size: .85rem; display: inline-block; }
</style>
"""


# Characters that start Markdown constructs (links, images, emphasis, code, HTML, headings,
# tables, maths, Streamlit's :directives:); "-", "+" and "1." only at the start of a line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~$:])")
ZWSP = "\u200b"
_AUTOLINK = re.compile(r"(?i)(?<=\w):/|www\.|\w@")
_LINE_START = re.compile(r"^(\s*)([-+]|\d+[.)])")


def plain(text: str | None) -> str:
    """Text from a user, a file name or a transcript, escaped for Streamlit's Markdown
    (titles, captions, button labels): shown as typed, never as a link, image or directive."""
    folded = " ".join(str(text or "").split())
    # GFM turns bare URLs and e-mail addresses into links even when escaped: an invisible
    # zero-width space keeps them text.
    folded = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + ZWSP + m.group(0)[-1], folded)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", folded)
    return _LINE_START.sub(lambda m: m.group(1) + "".join("\\" + c if not c.isdigit() else c for c in m.group(2)), escaped)


def clock(seconds: float | None) -> str:
    """Call time as m:ss (h:mm:ss past an hour)."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def sentiment_badge(label: str | None) -> str:
    if not label:
        return ""
    fg, bg, border = SENTIMENT_COLORS[label]
    return (f'<span class="cs-tag" style="color:{fg}">{SENTIMENT_ICON[label]} {label}</span>')


def transcript_html(sentences: Sequence[Sentence], corrections: dict | None = None, speaker_names: dict | None = None) -> str:
    """Sentences as chat bubbles coloured by sentiment: agent left, customer right."""
    from callsense.dashboard.data import SentenceKey

    rows = [TRANSCRIPT_CSS, '<div class="cs-tr">']
    for s in sentences:
        label, text, fix = s.sentiment, s.text, ""
        review = (corrections or {}).get(SentenceKey.of(s))
        if review is not None:
            label, text = review.sentiment, review.text
            fix = f'<span class="cs-fix">✓ reviewed by {html.escape(review.reviewer)}</span>'
        fg, bg, border = SENTIMENT_COLORS.get(label, SENTIMENT_COLORS["neutral"])
        who = (speaker_names or {}).get(s.speaker, s.speaker)
        side = "customer" if s.speaker == "customer" else "agent"
        rows.append(
            f'<div class="cs-row {side}" data-sentiment="{label}">'
            f'<div class="cs-meta">{clock(s.start)} · {html.escape(who)}</div>'
            f'<div class="cs-bubble" style="background:{bg};border-color:{border};color:{fg}">'
            f'{html.escape(text)}{sentiment_badge(label)}{fix}</div></div>')
    rows.append("</div>")
    return "".join(rows)


def sentence_frame(sentences: Iterable[Sentence]) -> pd.DataFrame:
    rows = [dict(start=s.start, end=s.end, speaker=s.speaker, sentiment=s.sentiment, confidence=s.confidence,
                 value=sentiment_value(s.sentiment), text=s.text) for s in sentences]
    return pd.DataFrame(rows, columns=["start", "end", "speaker", "sentiment", "confidence", "value", "text"])


CLOCK_LABEL = "floor(datum.value / 60) + ':' + (datum.value % 60 < 10 ? '0' : '') + floor(datum.value % 60)"


def sentiment_over_time_chart(sentences: Sequence[Sentence], speaker: str, *, span_s: float | None = None,
                              window: int = 3) -> alt.Chart | None:
    """One speaker's sentiment through the call: each sentence a dot coloured by its
    sentiment (-1 / 0 / +1), the running mean of the last `window` sentences a line."""
    df = sentence_frame(s for s in sentences if s.speaker == speaker)
    if df.empty:
        return None
    df = df.sort_values("start")
    df["trend"] = df["value"].rolling(window, min_periods=1).mean()
    domain = [0, max(span_s or 0.0, float(df["end"].max()), 10.0)]
    x = alt.X("start:Q", title=None, scale=alt.Scale(domain=domain, nice=False),
              axis=alt.Axis(labelExpr=CLOCK_LABEL, tickCount=6))
    y_scale = alt.Scale(domain=[-1.2, 1.2])
    y_axis = alt.Axis(values=[-1, 0, 1], grid=True, labelOverlap=False,
                      labelExpr="datum.value > 0 ? 'positive' : datum.value < 0 ? 'negative' : 'neutral'")
    base = alt.Chart(df)
    line = base.mark_line(interpolate="monotone", strokeWidth=2.5,
                          color=SPEAKER_COLORS.get(speaker, "#455a64")).encode(
        x=x, y=alt.Y("trend:Q", title=None, scale=y_scale, axis=y_axis))
    dots = base.mark_circle(size=80, opacity=0.95).encode(
        x=x,
        y=alt.Y("value:Q", title=None, scale=y_scale, axis=y_axis),
        color=alt.Color("sentiment:N", scale=alt.Scale(domain=LABEL_DOMAIN, range=LABEL_RANGE), legend=None),
        tooltip=[alt.Tooltip("sentiment:N"), alt.Tooltip("confidence:Q", format=".2f"), alt.Tooltip("text:N")])
    return alt.layer(line, dots).properties(title=alt.Title(speaker.capitalize(), anchor="start", fontSize=13))


try:  # Streamlit's own Altair -> Vega-Lite conversion (what st.altair_chart does on every call)
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec
except ImportError:  # pragma: no cover - another Streamlit: st.altair_chart converts each time
    _convert_altair_to_vega_lite_spec = None

_CHART_SPECS: OrderedDict[tuple, dict] = OrderedDict()  # (speaker, span, sentences) -> Vega-Lite spec
_CHART_SPECS_MAX = 256
_CHART_SPECS_LOCK = threading.Lock()


def _sentiment_chart_spec(sentences: Sequence[Sentence], speaker: str, span_s: float) -> dict | None:
    """The Vega-Lite spec of `sentiment_over_time_chart`, kept for the same sentences: building
    and validating it costs tens of ms (Altair's JSON-schema validation), and the Live page
    redraws every call's chart every refresh while new sentences arrive only now and then.
    The key holds every value the chart shows, so a spec is only ever reused for the same data."""
    key = (speaker, span_s, tuple((s.start, s.end, s.sentiment, s.confidence, s.text)
                                  for s in sentences if s.speaker == speaker))
    with _CHART_SPECS_LOCK:
        spec = _CHART_SPECS.get(key)
        if spec is not None:
            _CHART_SPECS.move_to_end(key)
            return spec
    chart = sentiment_over_time_chart(sentences, speaker, span_s=span_s)
    if chart is None:
        return None
    spec = _convert_altair_to_vega_lite_spec(chart)
    with _CHART_SPECS_LOCK:
        _CHART_SPECS[key] = spec
        while len(_CHART_SPECS) > _CHART_SPECS_MAX:
            _CHART_SPECS.popitem(last=False)
    return spec


def render_sentiment_over_time(sentences: Sequence[Sentence], *, height: int = 150, span_s: float | None = None) -> None:
    """A sentiment-over-time chart per speaker (agent first), on one time axis."""
    speakers = sorted({s.speaker for s in sentences}, key=lambda sp: (sp != "agent", sp))
    end = max([span_s or 0.0, *(s.end for s in sentences)])
    for sp in speakers:
        if _convert_altair_to_vega_lite_spec is None:
            chart = sentiment_over_time_chart(sentences, sp, span_s=end)
            if chart is not None:
                st.altair_chart(chart, width="stretch", height=height)
            continue
        spec = _sentiment_chart_spec(sentences, sp, end)
        if spec is not None:  # a copy: Streamlit moves the datasets out of the spec it is given
            st.vega_lite_chart(spec=copy.deepcopy(spec), width="stretch", height=height)


def counts_html(by_speaker: dict[str, dict[str, int]]) -> str:
    """Per speaker, a bar split by sentiment with the counts: readable at a glance."""
    rows = ['<div class="cs-counts" style="font-size:.88rem">']
    for speaker in sorted(by_speaker, key=lambda sp: (sp != "agent", sp)):
        counts = by_speaker[speaker]
        total = sum(counts.values()) or 1
        segments = "".join(
            f'<div title="{label}: {counts.get(label, 0)}" style="width:{100 * counts.get(label, 0) / total:.1f}%;'
            f'background:{SENTIMENT_COLORS[label][2]};color:white;text-align:center;overflow:hidden">'
            f'{counts.get(label, 0) if counts.get(label, 0) else ""}</div>'
            for label in LABELS)
        rows.append(f'<div style="display:flex;align-items:center;gap:.6rem;margin:.3rem 0" data-speaker="{html.escape(speaker)}">'
                    f'<div style="flex:0 0 5.5rem;font-weight:600">{html.escape(speaker.capitalize())}</div>'
                    f'<div style="flex:1;display:flex;height:1.35rem;border-radius:.3rem;overflow:hidden;'
                    f'background:#eceff1;line-height:1.35rem">{segments}</div></div>')
    legend = " ".join(f'<span style="color:{SENTIMENT_COLORS[label][2]}">■</span> {label}' for label in LABELS)
    rows.append(f'<div style="color:#6b7280;font-size:.78rem;margin-top:.2rem">{legend}</div></div>')
    return "".join(rows)


@st.cache_data(max_entries=8, show_spinner="Preparing the audio ...")
def call_tracks(blob_dir: str, blob: str, n_channels: int) -> list[bytes]:
    """A call's recording as one MP3 per channel (cached: decoding takes about a second)."""
    from pathlib import Path

    from callsense.dashboard.audio import channel_tracks

    return channel_tracks((Path(blob_dir) / blob[:2] / blob).read_bytes(), n_channels)


def empty_state(title: str, body: str, icon: str = ":material/info:") -> None:
    with st.container(border=True):
        st.markdown(f"**{title}**")
        st.markdown(body)
