"""Live guidance (issue 15 §6): a manager's notes to the agent during a call, and the agent's
own "My live call" view on the Live page.

- A manager following a live call on the Live page has a "Send a note to the agent" box on
  that call's panel (`note_box`); the note is stored with the call (`call_notes`).
- An agent (a user with the `agent` role and not `manager`) opening the Live page sees their
  own current live call (`my_live_call`): the managers' notes first, newest first, then the
  call's alerts, its sentences as they arrive with their sentiment, and its chart, re-read
  every `settings.dashboard.refresh_s`, so a note shows within about that long. (Tried and
  dropped, issue 15: the note box as a fragment of its own inside the panel, and the agent's
  notes as a fragment polling every 0.25 s. In Chromium on 2 shared cores the box then showed
  seconds late or not at all, and notes reached the agent later, not sooner: every extra
  fragment run is browser work too. What shortens the wait is a cheap refresh: the charts are
  rebuilt only when sentences change, `ui.render_sentiment_over_time`.)
- The Call page lists a call's notes with author and time (`render_call_notes`).

Who may write and read notes is decided in `DashboardData` (`add_note`, `notes`); the
pages only leave out what the user cannot use. A note is shown with `st.text`: the characters
as typed, never read as Markdown or HTML (`ui.plain` would not do here: Streamlit's Markdown
still turns a bare URL or e-mail address into a link after escaping).
"""

from __future__ import annotations

import time
from typing import Sequence

import streamlit as st

from callsense.dashboard import characteristics_ui, ui
from callsense.dashboard.data import NOTE_MAX_CHARS, AccessDenied, CallNote, User
from callsense.dashboard.registry import PageContext
from callsense.store.schema import Call

SHOWN_SENTENCES = 12
NOTE_TEXT_KEY = "live.note.{call_id}"  # the note box's text, per call
NOTE_FLASH_KEY = "live.note-flash.{call_id}"  # ("ok" | "error", message) after a send


def shows_my_live_call(user: User) -> bool:
    """The Live page's agent view is for agents; a manager gets the board of every call."""
    return "agent" in user.roles and "manager" not in user.roles


#: Notes stand out (a callout's colours); their first line (author and time) is bold.
NOTES_CSS = ("<style>div[class*='st-key-call-note-'] {background:#fff8e1;border-left:4px solid #f0a020;"
             "border-radius:.45rem;padding:.45rem .7rem;}"
             "div[class*='st-key-call-note-'] [data-testid=stText] {font-family:inherit;white-space:pre-wrap;}"
             "div[class*='st-key-call-note-'] [data-testid=stText]::first-line {font-weight:600;}"
             ".st-key-my-live-notes div[class*='st-key-call-note-'] {font-size:1.1rem;}</style>")


def _note_time(note: CallNote, call: Call | None) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(note.created_at))
    if call is not None and note.created_at >= call.started_at:
        at += f" (call time {ui.clock(note.created_at - call.started_at)})"
    return at


def note_text(note: CallNote, call: Call | None) -> str:
    """What a note shows: who and when, then the text exactly as typed."""
    return f"{note.author} · {_note_time(note, call)}\n{note.text}"


def render_notes(notes: Sequence[CallNote], call: Call | None) -> None:
    """Notes, newest first, each as plain text (`st.text`: no Markdown, no HTML, no autolinks)."""
    if notes:
        st.html(NOTES_CSS)
    for note in notes:
        with st.container(key=f"call-note-{note.id}"):
            st.text(note_text(note, call))


# ---- manager: the note box on a followed live call --------------------------------------


def _send(ctx: PageContext, call_id: str) -> None:
    """The Send button's callback: runs before the rerun, so the box is emptied only on success."""
    key = NOTE_TEXT_KEY.format(call_id=call_id)
    try:
        ctx.data.add_note(call_id, st.session_state.get(key, ""))
    except (ValueError, AccessDenied, LookupError) as e:
        st.session_state[NOTE_FLASH_KEY.format(call_id=call_id)] = ("error", str(e), time.time() + 60)
        return
    st.session_state[key] = ""
    st.session_state[NOTE_FLASH_KEY.format(call_id=call_id)] = ("ok", "Sent: the agent sees it on their Live page.",
                                                               time.time() + 5)


def note_box(ctx: PageContext, call: Call) -> None:
    """'Send a note to the agent' and the notes already sent on this call (managers only)."""
    if not ctx.data.can_send_notes:
        return
    with st.form(key=f"note-form-{call.id}", border=False, enter_to_submit=False):
        st.text_area("Send a note to the agent", key=NOTE_TEXT_KEY.format(call_id=call.id), height=68,
                     placeholder=f"Shown on agent {call.agent_id or '-'}'s screen at once (plain text, "
                                 f"at most {NOTE_MAX_CHARS:,} characters)")
        st.form_submit_button("Send note", icon=":material/send:", key=f"note-send-{call.id}",
                              on_click=_send, args=(ctx, call.id))
    # The panel re-runs every refresh_s: the outcome of a send stays a few seconds (an error a minute).
    flash = st.session_state.get(NOTE_FLASH_KEY.format(call_id=call.id))
    if flash is not None and time.time() < flash[2]:
        (st.error if flash[0] == "error" else st.success)(flash[1])
    sent = ctx.data.notes(call.id, limit=5)
    if sent:
        with st.expander("Notes sent on this call (newest first)", key=f"notes-sent-{call.id}"):
            render_notes(sent, call)


# ---- agent: my live call ----------------------------------------------------------------


def my_live_call(ctx: PageContext) -> None:
    """The agent's own call in progress (a fragment re-run every refresh_s by the Live page)."""
    calls = ctx.data.my_live_calls()
    if not calls:
        ui.empty_state("No calls in progress.",
                       "Your live call shows here while it goes on: what is said, with its sentiment, "
                       "the alerts it raises and the notes your managers send you.")
        ended = ctx.data.finished_live_calls(limit=5)
        if ended:
            st.subheader("Your recent calls")
            for call in ended:
                if st.button(f"{ui.when(call.started_at)} · {ui.plain(call.source_name)}", key=f"my-ended-{call.id}",
                             icon=":material/open_in_new:", type="tertiary"):
                    ctx.goto("call", **{"call.selected": call.id})
        return
    call = calls[0]
    sentences = ctx.data.sentences(call.id)
    streak = ctx.data.streak(sentences)
    st.markdown(f"#### {ui.plain(call.source_name or call.id)}\n"
                f"running {ui.clock(max(0.0, time.time() - call.started_at))} · {len(sentences)} sentences"
                + (f" · you have {len(calls) - 1} more call(s) open" if len(calls) > 1 else ""))
    with st.container(key="my-live-notes"):
        notes = ctx.data.notes(call.id, limit=20)
        if notes:
            st.subheader("Notes from your manager")
            render_notes(notes, call)
    cats = ctx.data.categories(call.id)
    if cats or streak.flagged:
        with st.container(key="my-live-alerts"):
            if cats:
                characteristics_ui.render_categories(cats, prefix="🔔 ")
            if streak.flagged:
                st.html(f'<div class="cs-flag">⚠ {streak.longest} negative customer sentences in a row'
                        f' — from {ui.clock(streak.first_flag_at)}</div>')
    left, right = st.columns([3, 2])
    with left:
        if not sentences:
            st.caption("Waiting for the first sentence ...")
        else:
            recent = sentences[-SHOWN_SENTENCES:]
            if len(sentences) > len(recent):
                st.caption(f"Last {len(recent)} of {len(sentences)} sentences")
            st.html(ui.transcript_html(recent))
    with right:
        ui.render_sentiment_over_time(sentences, height=130)


# ---- the Call page ----------------------------------------------------------------------


def render_call_notes(ctx: PageContext, call: Call) -> None:
    """The call's notes with author and time, for those who may read them (none: nothing shown)."""
    if not ctx.data.may_read_notes(call):
        return
    notes = ctx.data.notes(call.id)
    if notes:
        with st.expander(f"Notes to the agent during the call ({len(notes)})", expanded=True, icon=":material/campaign:"):
            render_notes(notes, call)
