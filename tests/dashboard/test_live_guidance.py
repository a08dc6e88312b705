"""Live guidance (issue 15 §6): a manager sends the agent a note during a live call; the agent
sees their own live call with the note; the note is stored with the call. Roles are decided
in the data layer (first part), and the pages follow (AppTest, second part)."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from callsense.dashboard import demo
from callsense.dashboard.data import NOTE_MAX_CHARS, AccessDenied, DashboardData, User
from callsense.store.review import CallNote

from dash_support import make_dash_store
from test_pages import run_page, texts

MANAGER = User("maria", frozenset({"manager", "reviewer"}))
AGENT_1 = User("ag-1", frozenset({"agent"}), agent_id="ag-1")
AGENT_2 = User("ag-2", frozenset({"agent"}), agent_id="ag-2")
REVIEWER = User("rita", frozenset({"reviewer"}))
CALL = "live-guide"


def live_call(store, call_id: str = CALL, agent_id: str = "ag-1", sentences: int = 3):
    """A live demo call of `agent_id` with its first sentences stored, still in progress."""
    gen = demo.play_live_call(store, call_id, "billing", agent_id=agent_id, speed=1e6, mood=0.0,
                              source_name=f"Guided call {call_id}")
    for _ in range(sentences):
        next(gen)
    return gen


# --------------------------------------------------------------------------- the data layer


@pytest.fixture
def small(tmp_path):
    return make_dash_store(tmp_path / "small")


def test_only_managers_write_notes_and_only_the_calls_agent_and_managers_read_them(small):
    live_call(small.store)
    live_call(small.store, "other-call", agent_id="ag-2")
    clock = iter([1000.0, 1001.0, 1002.0])
    manager = DashboardData(small.engine, MANAGER, clock=lambda: next(clock))
    first = manager.add_note(CALL, "Offer the refund now.")
    second = manager.add_note(CALL, "  Then close the call.\n")
    assert (first.author, first.agent_id, first.call_id, first.created_at) == ("maria", "ag-1", CALL, 1000.0)
    assert second.text == "Then close the call."  # trimmed, otherwise as typed

    # Newest first, for the call's agent and for managers.
    for user in (MANAGER, AGENT_1):
        assert [n.text for n in DashboardData(small.engine, user).notes(CALL)] == ["Then close the call.",
                                                                                 "Offer the refund now."]
    # Nobody else reads them: another agent, a reviewer without the manager role.
    for user in (AGENT_2, REVIEWER):
        with pytest.raises(AccessDenied):
            DashboardData(small.engine, user).notes(CALL)
    # Agents and reviewers cannot write one, not even on their own call.
    for user, call_id in ((AGENT_1, CALL), (AGENT_2, "other-call"), (REVIEWER, CALL)):
        with pytest.raises(AccessDenied):
            DashboardData(small.engine, user).add_note(call_id, "hello")
    with Session(small.engine) as s:
        assert len(s.exec(select(CallNote)).all()) == 2


def test_notes_are_bounded_and_not_empty(small):
    live_call(small.store)
    manager = DashboardData(small.engine, MANAGER)
    manager.add_note(CALL, "x" * NOTE_MAX_CHARS)
    with pytest.raises(ValueError, match=r"at most 1,000 characters; this one has 1,001"):
        manager.add_note(CALL, "x" * (NOTE_MAX_CHARS + 1))
    for empty in ("", "   \n ", "\x00\x07"):
        with pytest.raises(ValueError, match="empty"):
            manager.add_note(CALL, empty)
    with pytest.raises(LookupError):
        manager.add_note("no-such-call", "hello")
    assert [len(n.text) for n in manager.notes(CALL)] == [NOTE_MAX_CHARS]


def test_an_agent_sees_only_their_own_live_call(small):
    live_call(small.store)
    live_call(small.store, "other-call", agent_id="ag-2")
    assert [c.id for c in DashboardData(small.engine, AGENT_1).my_live_calls()] == [CALL]
    assert [c.id for c in DashboardData(small.engine, AGENT_2).my_live_calls()] == ["other-call"]
    assert DashboardData(small.engine, REVIEWER).my_live_calls() == []


# --------------------------------------------------------------------------- the pages


def _send(at, text: str, call_id: str = CALL):
    at.text_area(key=f"live.note.{call_id}").input(text)
    at.button(key=f"note-send-{call_id}").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _notes(engine) -> list[CallNote]:
    with Session(engine) as s:
        return list(s.exec(select(CallNote).order_by(CallNote.id)).all())


def test_a_managers_note_reaches_the_agents_live_view_and_the_call(seeded):
    live_call(seeded.store)
    at = run_page(seeded, "live", "maria")
    assert "Guided call live-guide" in texts(at)
    _send(at, "Offer the refund for the second charge.")
    assert [s.value for s in at.success] == ["Sent: the agent sees it on their Live page."]
    assert at.text_area(key=f"live.note.{CALL}").value == ""  # emptied once sent
    _send(at, "Then ask if there is anything else.")
    assert [(n.author, n.agent_id, n.text) for n in _notes(seeded.engine)] == [
        ("maria", "ag-1", "Offer the refund for the second charge."), ("maria", "ag-1", "Then ask if there is anything else.")]

    agent = run_page(seeded, "live", "ag-1")
    assert [t.value for t in agent.title] == ["My live call"]
    body = texts(agent)
    assert "Guided call live-guide" in body and "Thank you for calling" in body  # their call, its sentences
    shown = [t.value for t in agent.text]
    assert len(shown) == 2 and "anything else" in shown[0] and "second charge" in shown[1]  # newest first
    assert shown[0].startswith("maria · ") and shown[0].endswith("\nThen ask if there is anything else.")
    # An agent cannot send one: no note box on their view.
    assert not [t for t in agent.text_area if t.key and t.key.startswith("live.note.")]
    assert not [b for b in agent.button if b.key and b.key.startswith("note-send-")]

    # Another agent sees neither the call nor the note.
    other = run_page(seeded, "live", "ag-2")
    assert "No calls in progress." in texts(other)
    assert "second charge" not in texts(other) and not other.text

    # Stored with the call: the Call page lists the notes with author and time.
    call_page = run_page(seeded, "call", "maria", **{"call.selected": CALL})
    shown = [t.value for t in call_page.text]
    assert [t.split("\n", 1)[1] for t in shown] == ["Then ask if there is anything else.",
                                                    "Offer the refund for the second charge."]
    assert all(t.startswith("maria · ") and "(call time " in t for t in shown)
    assert not run_page(seeded, "call", "rita", **{"call.selected": CALL}).text  # a reviewer reads no notes


def test_a_note_over_the_limit_is_refused_with_a_message_and_kept_in_the_box(seeded):
    live_call(seeded.store)
    at = run_page(seeded, "live", "maria")
    long = "Please " + "x" * NOTE_MAX_CHARS
    _send(at, long)
    assert [e.value for e in at.error] == [f"A note is at most 1,000 characters; this one has {len(long):,}. "
                                           "Shorten it and send it again."]
    assert at.text_area(key=f"live.note.{CALL}").value == long  # not lost: shorten it and send again
    assert _notes(seeded.engine) == []


def test_markdown_and_html_in_a_note_are_shown_as_typed(seeded):
    live_call(seeded.store)
    text = "**Refund** now: [click](https://evil.example) <b>bold</b> :red[alert] $x$\n# heading\n- item"
    _send(run_page(seeded, "live", "maria"), text)
    agent = run_page(seeded, "live", "ag-1")
    (shown,) = [t.value for t in agent.text]  # st.text: shown as these characters, never as Markdown or HTML
    assert shown.split("\n", 1)[1] == text
    assert not any("<b>bold</b>" in h.proto.body for h in agent.get("html"))
    assert "Refund" not in texts(agent)  # in no Markdown element
    # Stored exactly as typed.
    assert _notes(seeded.engine)[0].text == text


def test_the_agents_view_refreshes_by_itself(seeded):
    live_call(seeded.store)
    at = run_page(seeded, "live", "ag-1")
    assert not at.text
    DashboardData(seeded.engine, MANAGER).add_note(CALL, "Slow down a little.")
    at.run()  # what the fragment's run_every does in the browser
    assert [t.value.split("\n", 1)[1] for t in at.text] == ["Slow down a little."]
    DashboardData(seeded.engine, MANAGER).add_note(CALL, "Now offer the voucher.")
    at.run()  # newest first
    assert [t.value.split("\n", 1)[1] for t in at.text] == ["Now offer the voucher.", "Slow down a little."]
