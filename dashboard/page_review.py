"""Review: a queue of sentences to check, lowest model confidence first (or sampled). A
reviewer accepts the predicted sentiment or corrects it (and the transcript); each verdict
is stored with who and when and becomes labelled data for fine-tuning."""

from __future__ import annotations

import streamlit as st

from callsense.dashboard import audio, ui
from callsense.dashboard.analytics import LABELS
from callsense.dashboard.data import ReviewItem, SentenceKey
from callsense.dashboard.registry import PageContext, page

SKIP_KEY = "review.skipped"
ORDERS = {"confidence": "Lowest confidence first", "sample": "Random sample"}


@page("review", title="Review", icon=":material/rate_review:", order=40, roles=("reviewer",),
      home_for=("reviewer",))
def review_page(ctx: PageContext) -> None:
    st.title("Label review")
    counts = ctx.data.review_counts()
    m = st.columns(4)
    m[0].metric("Waiting", counts["waiting"])
    m[1].metric("Reviewed", counts["reviewed"])
    m[2].metric("Corrections", counts["corrections"])
    m[3].metric("Yours, last 24 h", counts["mine_24h"])
    if counts["sentences"] == 0:
        ui.empty_state("Nothing to review yet.",
                       "Sentences appear here once calls are processed: `callsense process samples/`.")
        return

    with st.container(horizontal=True, vertical_alignment="bottom"):
        order = st.segmented_control("Queue", list(ORDERS), format_func=ORDERS.get, default="confidence",
                                     key="review.order") or "confidence"
        speaker = st.selectbox("Speaker", ["customer", "agent", "any"], key="review.speaker", width=160)
        label = st.selectbox("Predicted", ["any", *LABELS], key="review.label", width=160)
    skipped: list[SentenceKey] = st.session_state.setdefault(SKIP_KEY, [])
    items = ctx.data.review_queue(order=order, limit=1, speaker=None if speaker == "any" else speaker,
                                  label=None if label == "any" else label, skip=skipped)
    if not items:
        if skipped:
            st.info(f"Nothing left in this queue except the {len(skipped)} sentence(s) you skipped.")
            if st.button("Bring the skipped ones back", key="review.unskip"):
                st.session_state[SKIP_KEY] = []
                st.rerun()
        else:
            st.success("Every sentence matching these filters has been reviewed.")
        _recent(ctx)
        return
    review_card(ctx, items[0])
    _recent(ctx)


def review_card(ctx: PageContext, item: ReviewItem) -> None:
    s = item.sentence
    call = ctx.data.call(s.call_id)
    with st.container(border=True, key="review-card"):
        st.caption(f"Call **{ui.plain(call.source_name if call else s.call_id)}** · agent {ui.plain(s.agent_id or '-')} · "
                   f"{s.speaker} at {ui.clock(s.start)} · model `{s.sentiment_model or '?'}`")
        st.html(ui.transcript_html([c for c in item.context if c.id != s.id and c.start < s.start]))
        fg, bg, border = ui.SENTIMENT_COLORS[s.sentiment]
        st.html(f'<div style="border:2px solid {border};background:{bg};color:{fg};border-radius:.5rem;'
                f'padding:.6rem .8rem;font-size:1.15rem" data-review-sentence="1">'
                f'<b>{_esc(s.speaker)}</b>: {_esc(s.text)}<br><span style="font-size:.85rem">predicted '
                f'<b>{s.sentiment}</b> with confidence {s.confidence:.2f}</span></div>')
        st.html(ui.transcript_html([c for c in item.context if c.id != s.id and c.start >= s.start]))
        _snippet(ctx, call, s)
        with st.form(f"review-{s.id}", border=False):
            sentiment = st.segmented_control("Sentiment", LABELS, default=s.sentiment, key=f"review.sentiment.{s.id}",
                                             format_func=lambda x: f"{ui.SENTIMENT_ICON[x]} {x}")
            text = st.text_area("Transcript", value=s.text, key=f"review.text.{s.id}", height=80,
                                help="Fix the words if the speech recognition got them wrong")
            a, b, c = st.columns(3)
            accept = a.form_submit_button("Accept prediction", type="primary", icon=":material/check:", width="stretch")
            correct = b.form_submit_button("Save correction", icon=":material/edit:", width="stretch")
            skip = c.form_submit_button("Skip", icon=":material/skip_next:", width="stretch")
        if accept or correct:
            if accept:
                row = ctx.data.record_review(item.key, sentiment=s.sentiment, text=None)
            else:
                row = ctx.data.record_review(item.key, sentiment=sentiment or s.sentiment, text=text)
            st.session_state["review.last"] = f"{row.action}: {row.sentiment} — {row.text[:60]}"
            st.rerun()
        if skip:
            st.session_state[SKIP_KEY] = [*st.session_state.get(SKIP_KEY, []), item.key]
            st.rerun()
    last = st.session_state.pop("review.last", None)
    if last:
        st.toast(f"Saved ({last})", icon=":material/check_circle:")


def _snippet(ctx: PageContext, call, s) -> None:
    """The sentence's audio, when the call's recording can be found."""
    if call is None:
        return
    source = audio.locate_call_audio(ctx.engine, ctx.settings, call)
    if source is None:
        return
    try:
        tracks = ui.call_tracks(str(ctx.settings.resolved_blob_dir), source.blob, call.channels)
    except Exception as e:  # noqa: BLE001 - a review goes on without audio, but says why
        st.caption(f"The recording cannot be played here: {e}")
        return
    if s.channel < len(tracks):
        st.audio(tracks[s.channel], format="audio/mpeg", start_time=max(0.0, s.start - 0.2), end_time=s.end + 0.3)


def _recent(ctx: PageContext) -> None:
    rows = ctx.data.recent_reviews(limit=15)
    if not rows:
        return
    st.subheader("Recent reviews")
    st.dataframe([{
        "when": ui.when(r.reviewed_at), "reviewer": r.reviewer, "action": r.action,
        "label": (f"{r.original_sentiment} → {r.sentiment}" if r.sentiment != r.original_sentiment else r.sentiment),
        "text": r.text if r.text == r.original_text else f"{r.text}  (was: {r.original_text})",
    } for r in rows], hide_index=True, width="stretch")


def _esc(text: str) -> str:
    import html

    return html.escape(text)
