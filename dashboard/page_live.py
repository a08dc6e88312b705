"""Live: calls in progress, each with its running transcript and sentiment chart.

Two fragments refresh on their own: the board (which calls are live, their flags) every
second, and each followed call's transcript and chart every
settings.dashboard.refresh_s, so a new sentence shows within about that long and nothing
else on the page is redrawn. A panel's charts are built once per set of sentences
(`ui.render_sentiment_over_time` keeps their Vega-Lite specs), so a refresh with nothing new
costs little, and a "Send note" click (its callback runs at the start of the next run) waits
little behind it.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from callsense.dashboard import characteristics_ui, interim_ui, live_guidance, ui
from callsense.dashboard.data import LiveCallView
from callsense.dashboard.registry import PageContext, page
from callsense.store.schema import Call

FOLLOW_KEY = "live.follow"
CATEGORY_FILTER_KEY = "live.categories"
SHOWN_SENTENCES = 10


@page("live", title="Live", icon=":material/graphic_eq:", order=10, roles=("manager", "agent"),
      home_for=("manager", "agent"))
def live_page(ctx: PageContext) -> None:
    refresh = ctx.settings.dashboard.refresh_s
    if live_guidance.shows_my_live_call(ctx.user):  # an agent: their own call, and their managers' notes
        st.title("My live call")
        st.caption(f"Updates by itself every {refresh:g} s: what is said, its sentiment, alerts, and notes from your managers.")
        st.fragment(live_guidance.my_live_call, run_every=refresh)(ctx)
        return
    st.title("Live calls")
    st.caption(f"Updates by itself every {refresh:g} s. A call is flagged after "
               f"{ctx.settings.dashboard.negative_streak} negative customer sentences in a row.")
    st.fragment(live_board, run_every=max(1.0, 2 * refresh))(ctx)


def _elapsed(call: Call, now: float) -> str:
    return ui.clock(max(0.0, now - call.started_at))


def live_board(ctx: PageContext) -> None:
    now = time.time()
    calls = ctx.data.live_calls()
    views = ctx.data.live_overview(calls)
    if not views:
        ui.empty_state(
            "No calls in progress.",
            "Live calls show up here while they are streamed. With a Kafka broker running "
            "(`callsense kafka-local start`), start the pipeline with `callsense worker` and stream a "
            "recording as a call with `callsense stream-live samples/late-delivery.mp3 --agent ag-1`.",
        )
        ended = ctx.data.finished_live_calls()
        if ended:
            st.subheader("Recently ended")
            for call in ended:
                if st.button(f"{ui.when(call.started_at)} · {ui.plain(call.source_name)} · agent {ui.plain(call.agent_id or '-')}",
                             key=f"ended-{call.id}", icon=":material/open_in_new:", type="tertiary"):
                    ctx.goto("call", **{"call.selected": call.id})
        return

    alerts = ctx.data.categories_of([v.call.id for v in views])
    flagged = [v for v in views if v.streak.flagged]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Calls in progress", len(views))
    c2.metric("Flagged", len(flagged), help=f"{ctx.settings.dashboard.negative_streak}+ negative customer sentences in a row")
    c3.metric("Alerts", sum(len(a) for a in alerts.values()), help="Category rules that matched a call in progress")
    c4.metric("Sentences so far", sum(v.sentences for v in views))
    names = sorted({c.category for cats in alerts.values() for c in cats} | set(st.session_state.get(CATEGORY_FILTER_KEY) or []))
    wanted = st.multiselect("Only calls with these alerts", names, key=CATEGORY_FILTER_KEY,
                            placeholder="All calls", help="Categories that matched a call in progress")
    if wanted:
        views = [v for v in views if any(c.category in wanted for c in alerts.get(v.call.id, []))]
        if not views:
            st.caption("No call in progress has these alerts.")
            return

    board = pd.DataFrame([{
        "flag": "⚠" if v.streak.flagged else "",
        "call": v.call.source_name or v.call.id,
        "agent": v.call.agent_id or "-",
        "running": _elapsed(v.call, now),
        "sentences": v.sentences,
        "neg. streak": v.streak.current,
        "alerts": ", ".join(c.category for c in alerts.get(v.call.id, [])),
        "last": (ui.SENTIMENT_ICON.get(v.last_sentiment, "") + " " + v.last_text[:80]) if v.last_sentiment else "",
        "id": v.call.id,
    } for v in views])
    st.dataframe(board, hide_index=True, width="stretch", column_order=["flag", "call", "agent", "running", "sentences",
                                                                        "neg. streak", "alerts", "last"],
                 column_config={"flag": st.column_config.TextColumn("", width="small"),
                                "sentences": st.column_config.NumberColumn(width="small"),
                                "neg. streak": st.column_config.NumberColumn(width="small",
                                                                             help="Negative customer sentences in a row, now"),
                                "last": st.column_config.TextColumn("last sentence", width="large")})

    ids = [v.call.id for v in views]
    labels = {v.call.id: f"{'⚠ ' if v.streak.flagged else ''}{v.call.source_name or v.call.id} · {v.call.agent_id or '-'}"
              for v in views}
    default = _default_follow(views)
    chosen = [i for i in st.session_state.get(FOLLOW_KEY, default) if i in ids] or default
    follow = st.multiselect("Follow", options=ids, default=chosen, format_func=labels.get,
                            help="Calls to show with their running transcript and chart")
    st.session_state[FOLLOW_KEY] = follow
    for call_id in follow:
        st.fragment(live_call_panel, run_every=ctx.settings.dashboard.refresh_s)(ctx, call_id)


def _default_follow(views: list[LiveCallView], n: int = 2) -> list[str]:
    ranked = sorted(views, key=lambda v: (not v.streak.flagged, -v.call.started_at))
    return [v.call.id for v in ranked[:n]]


def live_call_panel(ctx: PageContext, call_id: str) -> None:
    call = ctx.data.call(call_id)
    if call is None:
        return
    sentences = ctx.data.sentences(call_id)
    streak = ctx.data.streak(sentences)
    with st.container(border=True, key=f"live-call-{call_id}"):
        head, flag = st.columns([3, 2], vertical_alignment="center")
        ended = call.status != "processing"
        head.markdown(f"#### {ui.plain(call.source_name or call.id)}\n"
                      f"agent **{ui.plain(call.agent_id or '-')}** · started {ui.when(call.started_at)} · "
                      f"{'ended' if ended else 'running ' + _elapsed(call, time.time())} · {len(sentences)} sentences")
        if streak.flagged:
            flag.html(f'<div class="cs-flag">⚠ {streak.longest} negative customer sentences in a row'
                      f'{" (ongoing)" if streak.current >= ctx.settings.dashboard.negative_streak else ""}'
                      f' — from {ui.clock(streak.first_flag_at)}</div>')
        cats = ctx.data.categories(call_id)
        if cats:
            with flag:
                characteristics_ui.render_categories(cats, prefix="🔔 ")
        if ended and flag.button("Open the finished call", key=f"open-{call_id}", icon=":material/open_in_new:"):
            ctx.goto("call", **{"call.selected": call_id})
        left, right = st.columns([3, 2])
        with left:
            interim = interim_ui.interim_html(ctx.settings, call_id, sentences) if not ended else ""
            if not sentences and not interim:
                st.caption("Waiting for the first sentence ...")
            elif sentences:
                recent = sentences[-SHOWN_SENTENCES:]
                if len(sentences) > len(recent):
                    st.caption(f"Last {len(recent)} of {len(sentences)} sentences")
                st.html(ui.transcript_html(recent))
            if interim:  # words still being spoken, greyed until their final sentence replaces them
                st.html(interim)
        with right:
            ui.render_sentiment_over_time(sentences, height=130)
        if not ended:
            live_guidance.note_box(ctx, call)
