"""Call: one call, with a player per channel, the transcript (click a sentence's time to
play it), the sentiment timeline, talk time, silence, overlap and sentiment counts."""

from __future__ import annotations

import streamlit as st

from callsense.dashboard import audio, characteristics_ui, live_guidance, ui
from callsense.dashboard.analytics import LABELS
from callsense.dashboard.data import AccessDenied, SentenceKey
from callsense.dashboard.registry import PageContext, page
from callsense.store.schema import Call

SELECTED_KEY = "call.selected"
PLAY_KEY = "call.play"  # (call_id, channel, start, nonce)


def _label(call: Call) -> str:
    status = "" if call.status == "done" else f" · {call.status}"
    # A select box shows its options as plain text already: no escaping here.
    return f"{ui.when(call.started_at)} · {call.source_name or call.id} · agent {call.agent_id or '-'}{status}"


@page("call", title="Call", icon=":material/call:", order=20)
def call_page(ctx: PageContext) -> None:
    calls = ctx.data.calls(limit=500)
    if not calls:
        st.title("Call")
        ui.empty_state("No calls yet.",
                       "Process recordings into the store with `callsense process samples/` "
                       "(add `--agent ID` to attach an agent), then come back here.")
        return
    by_id = {c.id: c for c in calls}
    # The call to show: one chosen here or sent from another page, else the URL's ?call=, else the newest done.
    wanted = st.session_state.get(SELECTED_KEY) or st.query_params.get("call")
    if wanted and wanted not in by_id:
        try:
            extra = ctx.data.call(wanted)
        except AccessDenied:
            extra = None
            st.error(f"You may not open call `{wanted}`.")
        if extra is not None:
            by_id[extra.id] = extra
    if wanted not in by_id:
        wanted = next((c.id for c in calls if c.status == "done"), calls[0].id)
    st.session_state["call.picker"] = wanted

    def picked() -> None:
        st.session_state[SELECTED_KEY] = st.session_state["call.picker"]

    call_id = st.selectbox("Call", list(by_id), format_func=lambda i: _label(by_id[i]), key="call.picker", on_change=picked)
    st.session_state[SELECTED_KEY] = call_id
    st.query_params["call"] = call_id
    try:
        call = ctx.data.call(call_id)
    except AccessDenied as e:
        st.error(str(e))
        return
    render_call(ctx, call)


def render_call(ctx: PageContext, call: Call) -> None:
    sentences = ctx.data.sentences(call.id)
    stats = ctx.data.talk_stats(call.id)
    corrections = ctx.data.corrections(call.id)
    streak = ctx.data.streak(sentences)

    st.title(ui.plain(call.source_name or call.id))
    st.caption(f"`{call.id}` · {call.mode} · agent **{ui.plain(call.agent_id or '-')}** · started {ui.when(call.started_at)} · "
               f"status {call.status}" + (f" · reviewed sentences: {len(corrections)}" if corrections else ""))
    if call.status == "failed":
        st.error(f"This call failed: {ui.plain(call.error) if call.error else 'see `callsense dead-letters`'}")
    elif call.status == "processing":
        st.info("This call is still being processed; what is stored so far is shown." +
                (" Watch it on the Live page." if call.mode == "live" else ""))
    if streak.flagged:
        st.warning(f"{streak.longest} negative customer sentences in a row (from {ui.clock(streak.first_flag_at)}).",
                   icon=":material/flag:")
    characteristics_ui.render_categories(ctx.data.categories(call.id))
    live_guidance.render_call_notes(ctx, call)

    cols = st.columns(6)
    cols[0].metric("Duration", ui.clock(stats.duration_s))
    speakers = sorted(stats.talk_s, key=lambda s: (s != "agent", s))
    for i, sp in enumerate(speakers[:2]):
        share = stats.talk_s[sp] / stats.duration_s if stats.duration_s else 0
        cols[1 + i].metric(f"{sp.capitalize()} talk", ui.clock(stats.talk_s[sp]), f"{share:.0%} of the call", delta_color="off", delta_arrow="off")
    cols[3].metric("Silence", ui.clock(stats.silence_s),
                   f"{stats.silence_s / stats.duration_s:.0%}" if stats.duration_s else None, delta_color="off", delta_arrow="off")
    cols[4].metric("Overlap", f"{stats.overlap_s:.1f} s",
                   f"{sum(stats.interruptions.values())} interruptions", delta_color="off", delta_arrow="off",
                   help="Time both speak at once; an interruption is a turn started while the other was speaking")
    counts = {label: sum(1 for s in sentences if s.sentiment == label) for label in LABELS}
    cols[5].metric("Sentences", len(sentences),
                   " / ".join(f"{ui.SENTIMENT_ICON[k]}{counts[k]}" for k in LABELS), delta_color="off", delta_arrow="off",
                   help="negative / neutral / positive")

    if not sentences:
        ui.empty_state("No sentences stored for this call.",
                       "A call without sentences had no speech, or is still being processed. "
                       "Problems are listed by `callsense dead-letters`.")
        return

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.fragment(player_and_transcript)(ctx, call, sentences, corrections)
    with right:
        st.subheader("Sentiment over time")
        ui.render_sentiment_over_time(sentences, height=160, span_s=stats.duration_s)
        st.subheader("Sentences by sentiment")
        by_speaker: dict[str, dict[str, int]] = {}
        for s in sentences:
            per = by_speaker.setdefault(s.speaker, {k: 0 for k in LABELS})
            per[s.sentiment] += 1
        st.html(ui.counts_html(by_speaker))
        st.subheader("Talk time")
        rows = [{"who": sp, "time": ui.clock(t), "share": 100 * t / stats.duration_s if stats.duration_s else 0,
                 "interruptions": str(stats.interruptions.get(sp, 0))} for sp, t in sorted(stats.talk_s.items())]
        rows.append({"who": "silence", "time": ui.clock(stats.silence_s),
                     "share": 100 * stats.silence_s / stats.duration_s if stats.duration_s else 0, "interruptions": ""})
        rows.append({"who": "overlap", "time": f"{stats.overlap_s:.1f} s",
                     "share": 100 * stats.overlap_s / stats.duration_s if stats.duration_s else 0, "interruptions": ""})
        st.dataframe(rows, hide_index=True, width="stretch",
                     column_config={"share": st.column_config.ProgressColumn("share of call", format="%.0f%%",
                                                                             min_value=0, max_value=100)})
        characteristics_ui.render_characteristics(ctx.data.characteristics(call.id, sentences))


def _speaker_of_channel(call: Call, channel: int) -> str:
    speakers = [s for s in call.speakers.split(",") if s]
    return speakers[channel] if channel < len(speakers) else f"channel {channel + 1}"


def player_and_transcript(ctx: PageContext, call: Call, sentences, corrections) -> None:
    play = st.session_state.get(PLAY_KEY)
    if not play or play[0] != call.id:
        play = None
    text_only = call.mode == "text"  # a chat or email conversation: no recording exists
    source = None if text_only else audio.locate_call_audio(ctx.engine, ctx.settings, call)
    if text_only:
        st.caption("A chat or email conversation: no audio. Times are the messages' own times from the first "
                   "message, or their order (message n at n seconds) where the messages have none.")
    elif source is None:
        st.subheader("Audio")
        st.info("The original recording of this call is not available to the dashboard: the store keeps no "
                "reference to it (live calls, and recordings small enough to travel inside the event). "
                f"Attach it with `callsense dashboard attach-audio {call.id} FILE`.", icon=":material/volume_off:")
    else:
        st.subheader("Audio")
        try:
            tracks = ui.call_tracks(str(ctx.settings.resolved_blob_dir), source.blob, call.channels)
        except Exception as e:  # a damaged blob must not take the page down
            st.warning(f"The recording could not be decoded: {e}")
            tracks = []
        cols = st.columns(max(1, len(tracks)))
        for channel, track in enumerate(tracks):
            with cols[channel]:
                st.caption(f"**{_speaker_of_channel(call, channel).capitalize()}** · channel {channel + 1}")
                playing = play is not None and play[1] == channel
                # The nonce nudges start_time so a second click on the same sentence seeks again.
                start = (play[2] + play[3] * 1e-3) if playing else 0.0
                st.audio(track, format="audio/mpeg", start_time=start, autoplay=playing)
        if play is not None:
            st.caption(f"Playing {_speaker_of_channel(call, play[1])} from {ui.clock(play[2])}")

    st.subheader("Messages" if text_only else "Transcript")
    st.caption("Click a time to play that sentence." if source is not None else
               "Colours show each sentence's sentiment.")
    st.html(ui.TRANSCRIPT_CSS)
    with st.container(height=560, key="call-transcript"):
        for s in sentences:
            review = corrections.get(SentenceKey.of(s))
            t_col, s_col = st.columns([1.7, 8.3], vertical_alignment="top", gap="small")
            t_col.button(ui.clock(s.start), key=f"play-{s.id}", type="tertiary", icon=":material/play_arrow:",
                         disabled=source is None, help=f"Play the {s.speaker} channel from {ui.clock(s.start)}",
                         on_click=_play, args=(call.id, s.channel, s.start))
            s_col.html(_one_sentence(s, review))


def _play(call_id: str, channel: int, start: float) -> None:
    """Button callback: runs before the rerun, so the players get the new start at once."""
    play = st.session_state.get(PLAY_KEY)
    nonce = (play[3] + 1) % 7 if play else 0
    st.session_state[PLAY_KEY] = (call_id, channel, start, nonce)


def _one_sentence(s, review) -> str:
    label, text, fix = s.sentiment, s.text, ""
    if review is not None:
        label, text = review.sentiment, review.text
        fix = '<span class="cs-fix">✓ reviewed</span>'
    fg, bg, border = ui.SENTIMENT_COLORS[label]
    import html as _html

    return (f'<div class="cs-row" data-sentiment="{label}"><div class="cs-bubble" '
            f'style="background:{bg};border-color:{border};color:{fg};max-width:100%">'
            f'<b>{_html.escape(s.speaker)}</b> · {_html.escape(text)}{ui.sentiment_badge(label)}'
            f'<span class="cs-fix">{s.confidence:.2f}</span>{fix}</div></div>')
