"""Agents: per agent, calls over time and the customers' reactions, against the team, with
a drill-down to each call. Managers see every agent; an agent sees their own history."""

from __future__ import annotations

import datetime as dt
import time

import altair as alt
import pandas as pd
import streamlit as st

from callsense.dashboard import ui
from callsense.dashboard.data import AgentTotals, DashboardData
from callsense.dashboard.registry import PageContext, page

PERIODS = (7, 30, 90, 180, 365)
AGENT_KEY = "agents.agent"


def _tz_offset() -> float:
    return -time.altzone if time.localtime().tm_isdst > 0 else -time.timezone


@st.cache_data(ttl=30, show_spinner=False, hash_funcs={DashboardData: lambda d: (str(d.engine.url), d.user)})
def _history(data: DashboardData, agent_id: str, days: int) -> pd.DataFrame:
    rows = data.agent_history(agent_id, days, tz_offset_s=_tz_offset())
    frame = pd.DataFrame([{
        "date": pd.Timestamp(dt.date(1970, 1, 1) + dt.timedelta(days=r.day)),
        "calls": r.calls,
        "customer_pos": r.customer.get("positive", 0),
        "customer_neu": r.customer.get("neutral", 0),
        "customer_neg": r.customer.get("negative", 0),
    } for r in rows], columns=["date", "calls", "customer_pos", "customer_neu", "customer_neg"])
    return frame


@st.cache_data(ttl=30, show_spinner=False, hash_funcs={DashboardData: lambda d: (str(d.engine.url), d.user)})
def _team(data: DashboardData, days: int) -> tuple[list[AgentTotals], AgentTotals]:
    comparison = data.team_comparison(days) if data.user.can_compare_agents else []
    return comparison, data.team_average(days)


def _resample(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, str]:
    """Daily up to 31 days, weekly above: the trend stays readable."""
    if frame.empty:
        return frame, "day"
    if days <= 31:
        return frame, "day"
    weekly = frame.set_index("date").resample("W-MON", label="left", closed="left").sum().reset_index()
    return weekly, "week"


def _shares(frame: pd.DataFrame) -> pd.DataFrame:
    total = frame["customer_pos"] + frame["customer_neu"] + frame["customer_neg"]
    out = frame.copy()
    out["positive"] = (frame["customer_pos"] / total.where(total > 0)).fillna(0)
    out["negative"] = (frame["customer_neg"] / total.where(total > 0)).fillna(0)
    return out


@page("agents", title="Agents", icon=":material/groups:", order=30, roles=("manager", "agent"))
def agents_page(ctx: PageContext) -> None:
    st.title("Agents")
    agents = ctx.data.agents()
    if not agents:
        ui.empty_state("No agents in the store yet.",
                       "Calls carry an agent id when they are processed with one: "
                       "`callsense process samples/ --agent ag-1` (or `--agent` on `produce` / `stream-live`).")
        return
    days = st.segmented_control("Period", PERIODS, default=30, format_func=lambda d: f"{d} days", key="agents.period") or 30
    comparison, team = _team(ctx.data, days)
    if ctx.user.can_compare_agents:
        team_comparison(ctx, comparison, team, days)
    if len(agents) == 1:
        agent_id = agents[0]
    else:
        if st.session_state.get(AGENT_KEY) not in agents:
            st.session_state[AGENT_KEY] = agents[0]
        agent_id = st.selectbox("Agent", agents, key=AGENT_KEY)
    agent_detail(ctx, agent_id, days, team)


def team_comparison(ctx: PageContext, comparison: list[AgentTotals], team: AgentTotals, days: int) -> None:
    st.subheader(f"Team, last {days} days")
    if not comparison:
        st.caption("No calls with an agent in this period.")
        return
    rows = pd.DataFrame([{
        "agent": t.agent_id,
        "calls": t.calls,
        "customer sentences": sum(t.customer.values()),
        "positive": t.customer_share("positive"),
        "negative": t.customer_share("negative"),
    } for t in comparison])
    left, right = st.columns([3, 2], gap="large")
    with left:
        shown = rows.assign(positive=rows["positive"] * 100, negative=rows["negative"] * 100)
        st.dataframe(shown, hide_index=True, width="stretch", column_config={
            "positive": st.column_config.ProgressColumn("positive customers", format="%.0f%%", min_value=0, max_value=100),
            "negative": st.column_config.ProgressColumn("negative customers", format="%.0f%%", min_value=0, max_value=100),
        })
    with right:
        avg = team.customer_share("negative")
        bars = alt.Chart(rows).mark_bar(color=ui.SENTIMENT_COLORS["negative"][2]).encode(
            y=alt.Y("agent:N", sort="-x", title=None),
            x=alt.X("negative:Q", title="share of negative customer sentences", axis=alt.Axis(format="%")),
            tooltip=["agent", "calls", alt.Tooltip("negative:Q", format=".0%")])
        rule = alt.Chart(pd.DataFrame({"x": [avg]})).mark_rule(strokeDash=[4, 3], color="#37474f").encode(x="x:Q")
        label = alt.Chart(pd.DataFrame({"x": [avg], "t": [f"team {avg:.0%}"]})).mark_text(
            align="left", dx=4, dy=-6, color="#37474f").encode(x="x:Q", y=alt.value(0), text="t:N")
        st.altair_chart(bars + rule + label, width="stretch", height=max(140, 34 * len(rows) + 50))


def agent_detail(ctx: PageContext, agent_id: str, days: int, team: AgentTotals) -> None:
    st.subheader(f"Agent {agent_id}, last {days} days")
    frame = _history(ctx.data, agent_id, days)
    if frame.empty:
        st.caption(f"No calls of {agent_id} in the last {days} days: choose a longer period.")
        return
    calls = int(frame["calls"].sum())
    pos, neu, neg = (int(frame[c].sum()) for c in ("customer_pos", "customer_neu", "customer_neg"))
    total = pos + neu + neg
    share_pos = pos / total if total else 0.0
    share_neg = neg / total if total else 0.0
    m = st.columns(4)
    m[0].metric("Calls", calls)
    m[1].metric("Customer sentences", total)
    m[2].metric("Positive customers", f"{share_pos:.0%}",
                f"{(share_pos - team.customer_share('positive')) * 100:+.0f} pts vs team")
    m[3].metric("Negative customers", f"{share_neg:.0%}",
                f"{(share_neg - team.customer_share('negative')) * 100:+.0f} pts vs team", delta_color="inverse")

    series, unit = _resample(frame, days)
    series = _shares(series)
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown(f"**Calls per {unit}**")
        st.altair_chart(alt.Chart(series).mark_bar(color="#1f6feb").encode(
            x=alt.X("date:T", title=None), y=alt.Y("calls:Q", title=None), tooltip=["date:T", "calls:Q"]
        ), width="stretch", height=240)
    with right:
        st.markdown(f"**Customer sentiment per {unit}** (dashed: team over the period)")
        long = series.melt(id_vars=["date"], value_vars=["positive", "negative"], var_name="sentiment", value_name="share")
        lines = alt.Chart(long).mark_line(point=True).encode(
            x=alt.X("date:T", title=None), y=alt.Y("share:Q", title=None, axis=alt.Axis(format="%")),
            color=alt.Color("sentiment:N", scale=alt.Scale(domain=["positive", "negative"],
                                                          range=[ui.SENTIMENT_COLORS["positive"][2], ui.SENTIMENT_COLORS["negative"][2]]),
                            legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["date:T", "sentiment:N", alt.Tooltip("share:Q", format=".0%")])
        team_rules = alt.Chart(pd.DataFrame({"share": [team.customer_share("positive"), team.customer_share("negative")],
                                             "sentiment": ["positive", "negative"]})).mark_rule(strokeDash=[4, 3]).encode(
            y="share:Q", color=alt.Color("sentiment:N", legend=None,
                                         scale=alt.Scale(domain=["positive", "negative"],
                                                         range=[ui.SENTIMENT_COLORS["positive"][2], ui.SENTIMENT_COLORS["negative"][2]])))
        st.altair_chart(lines + team_rules, width="stretch", height=240)

    agent_trends(ctx, agent_id, days, unit)
    agent_calls(ctx, agent_id, days)


TREND_METRICS = {
    "agent_wpm": ("Agent talk speed", "words/min"),
    "agent_loudness_dbfs": ("Agent loudness", "dBFS"),
    "silence_share": ("Silence share", "share of the call"),
    "interruptions": ("Interruptions per call", "per call"),
}


@st.cache_data(ttl=30, show_spinner=False, hash_funcs={DashboardData: lambda d: (str(d.engine.url), d.user)})
def _trends(data: DashboardData, agent_id: str, days: int) -> pd.DataFrame:
    rows = data.agent_trends(agent_id, days)
    return pd.DataFrame([{
        "date": pd.Timestamp(r.started_at, unit="s", tz="UTC").tz_convert(_local_tz()).tz_localize(None).normalize(),
        "agent_wpm": r.agent_wpm, "agent_loudness_dbfs": r.agent_loudness_dbfs,
        "silence_share": r.silence_share, "interruptions": r.interruptions,
    } for r in rows], columns=["date", *TREND_METRICS])


def agent_trends(ctx: PageContext, agent_id: str, days: int, unit: str) -> None:
    """Per day (week above a month): the mean per call of talk speed, loudness, silence share and interruptions."""
    frame = _trends(ctx.data, agent_id, days)
    st.markdown(f"**Call characteristics per {unit}** (mean per call)")
    if frame.empty:
        st.caption("No finished calls in this period.")
        return
    rule = "W-MON" if unit == "week" else "D"
    series = frame.set_index("date").resample(rule, label="left", closed="left").mean().dropna(how="all").reset_index()
    m = st.columns(len(TREND_METRICS))
    for i, (col, (title, what)) in enumerate(TREND_METRICS.items()):
        value = frame[col].mean()
        shown = "-" if pd.isna(value) else (f"{value:.0%}" if col == "silence_share" else f"{value:.1f}")
        m[i].metric(title, shown, what, delta_color="off", delta_arrow="off")
    long = series.melt(id_vars=["date"], value_vars=list(TREND_METRICS), var_name="metric", value_name="value").dropna()
    long["metric"] = long["metric"].map(lambda k: TREND_METRICS[k][0])
    chart = alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("date:T", title=None), y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=["date:T", "metric:N", alt.Tooltip("value:Q", format=".2f")],
    ).properties(height=120).facet(facet=alt.Facet("metric:N", title=None), columns=2).resolve_scale(y="independent")
    st.altair_chart(chart)


def agent_calls(ctx: PageContext, agent_id: str, days: int) -> None:
    rows = ctx.data.agent_calls(agent_id, days)
    cats = ctx.data.categories_of([r.call.id for r in rows])
    names = sorted({c.category for cs in cats.values() for c in cs})
    wanted = st.multiselect("Calls with categories", names, key=f"agents.categories.{agent_id}", placeholder="All calls",
                            help="Only calls in which any of these categories matched")
    if wanted:
        rows = [r for r in rows if any(c.category in wanted for c in cats.get(r.call.id, []))]
    st.markdown(f"**Calls** ({len(rows)})")
    if not rows:
        return
    table = pd.DataFrame([{
        "started": pd.Timestamp(r.call.started_at, unit="s", tz="UTC").tz_convert(_local_tz()).tz_localize(None),
        "call": r.call.source_name or r.call.id,
        "mode": r.call.mode,
        "duration": ui.clock(r.call.duration_s),
        "sentences": r.sentences,
        "negative customers": 100 * r.customer["negative"] / max(1, sum(r.customer.values())),
        "status": r.call.status,
        "categories": ", ".join(c.category for c in cats.get(r.call.id, [])),
        "id": r.call.id,
    } for r in rows])
    st.dataframe(table, hide_index=True, width="stretch", column_order=["started", "call", "mode", "duration", "sentences",
                                                                        "negative customers", "categories", "status"],
                 column_config={"started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                                "negative customers": st.column_config.ProgressColumn(format="%.0f%%", min_value=0, max_value=100)})
    labels = {r.call.id: f"{ui.when(r.call.started_at)} · {r.call.source_name or r.call.id}" for r in rows}
    pick, go = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox("Open a call", list(labels), format_func=labels.get, key=f"agents.open.{agent_id}")
    if go.button("Open call", icon=":material/open_in_new:", key="agents.open-button", width="stretch"):
        ctx.goto("call", **{"call.selected": chosen})


def _local_tz() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo

