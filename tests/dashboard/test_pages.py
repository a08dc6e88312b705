"""Page logic under Streamlit's AppTest: sign-in, each page with data and empty, the call
player, the review form, the agent's limits, and the page registry."""

from __future__ import annotations

import sys
import textwrap
import time

import pytest
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from callsense.dashboard import demo
from callsense.dashboard.registry import load_pages
from callsense.store.review import LabelReview

from dash_support import PASSWORDS, REPO

APP = str(REPO / "dashboard" / "app.py")
TIMEOUT = 30

ROLES = {"maria": (["manager", "reviewer"], None), "ag-1": (["agent"], "ag-1"), "ag-2": (["agent"], "ag-2"),
         "rita": (["reviewer"], None)}


def page_script(page_key: str, data_dir: str, username: str, roles: list, agent_id, state: dict) -> None:
    """One registered page rendered for one user, as the app renders it after sign-in."""
    import streamlit as st

    from callsense.core.settings import Settings
    from callsense.dashboard.data import DashboardData, User
    from callsense.dashboard.registry import PageContext, load_pages
    from callsense.store.db import make_engine

    for k, v in state.items():
        st.session_state.setdefault(k, v)
    settings = Settings(data_dir=data_dir)
    engine = make_engine(settings.resolved_database_url)
    user = User(username, frozenset(roles), agent_id=agent_id)
    data = DashboardData(engine, user, live_window_h=settings.dashboard.live_window_h,
                         negative_streak_n=settings.dashboard.negative_streak)

    def goto(key, **kw):
        st.session_state.update(kw)
        st.session_state["test.went_to"] = key

    pages = {p.key: p for p in load_pages()}
    assert pages[page_key].allows(user), f"{username} may not open {page_key}"
    pages[page_key].render(PageContext(settings=settings, user=user, data=data, engine=engine, goto=goto))


def run_page(ds, page_key: str, username: str, **state) -> AppTest:
    roles, agent_id = ROLES[username]
    at = AppTest.from_function(page_script, args=(page_key, str(ds.settings.data_dir), username, roles, agent_id, state),
                               default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [h.proto.body for h in at.get("html")] + [c.value for c in at.caption]
    parts += [e.value for e in at.info] + [e.value for e in at.warning] + [e.value for e in at.error] + [t.value for t in at.title]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------- the app shell


def sign_in(at: AppTest, user: str, password: str) -> AppTest:
    at.text_input(key="sign-in-user").input(user)
    at.text_input(key="sign-in-password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def test_sign_in_is_required_and_checks_the_password(seeded, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [t.value for t in at.title] == [":material/headset_mic: callsense"]
    assert not any("Live calls" in t.value for t in at.title)
    sign_in(at, "maria", "not her password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    sign_in(at, "nobody", "whatever")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    sign_in(at, "maria", PASSWORDS["maria"])
    assert not at.exception
    assert "Live calls" in [t.value for t in at.title]  # a manager lands on Live
    assert any("Maria Lopez" in m.value for m in at.sidebar.markdown)
    next(b for b in at.sidebar.button if b.label == "Sign out").click()
    at.run()
    assert any(t.value.endswith("callsense") for t in at.title)


def test_first_run_explains_how_to_add_a_user(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert any("callsense dashboard add-user" in i.value for i in at.info)


def test_a_reviewer_lands_on_a_page_their_role_allows(seeded, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(seeded.settings.data_dir))
    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    at = sign_in(AppTest.from_file(APP, default_timeout=TIMEOUT).run(), "rita", PASSWORDS["rita"])
    assert not at.exception
    assert [t.value for t in at.title] == ["Label review"]  # a reviewer's home is the review queue


# --------------------------------------------------------------------------- empty store


@pytest.mark.parametrize("page_key,user,expected", [
    ("live", "maria", "callsense stream-live"),
    ("call", "maria", "callsense process samples/"),
    ("agents", "maria", "--agent ag-1"),
    ("review", "rita", "callsense process samples/"),
    ("models", "maria", "No fine-tuning workspace yet."),
])
def test_empty_states_say_what_to_do(empty_store, page_key, user, expected):
    at = run_page(empty_store, page_key, user)
    assert expected in texts(at)


# --------------------------------------------------------------------------- pages with data


def test_live_page_shows_running_calls_and_flags_negative_streaks(seeded):
    call_id = "live-test-1"
    for _ in demo.play_live_call(seeded.store, call_id, "billing", agent_id="ag-1", speed=1e6, mood=-1.0):
        pass
    # Keep it running: the last event (CallSegmented) would finish it; re-open by writing a new live call.
    other = "live-test-2"
    gen = demo.play_live_call(seeded.store, other, "router", agent_id="ag-2", speed=1e6, mood=1.0)
    next(gen)  # one sentence stored, the call still in progress
    at = run_page(seeded, "live", "maria")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls in progress"] == "1"
    body = texts(at)
    assert "Hello, technical support" in body  # the live call's first sentence, in a panel
    # The finished live call is offered on the Call page, not shown as live.
    assert call_id not in body
    # An agent does not see another agent's live call.
    at_agent = run_page(seeded, "live", "ag-1")
    assert "No calls in progress." in texts(at_agent)


def test_live_flag_after_n_negative_customer_sentences(seeded):
    gen = demo.play_live_call(seeded.store, "live-angry", "billing", agent_id="ag-1", speed=1e6, mood=-1.0)
    for ev in gen:
        if ev.speaker == "customer" and ev.index >= 3:
            break
    at = run_page(seeded, "live", "maria")
    assert {m.label: m.value for m in at.metric}["Flagged"] == "1"
    assert "negative customer sentences in a row" in texts(at)


def test_call_page_shows_stats_players_and_plays_a_clicked_sentence(seeded):
    at = run_page(seeded, "call", "maria", **{"call.selected": seeded.sample_call_id})
    assert at.title[0].value == "late-delivery.mp3"
    metrics = {m.label: m.value for m in at.metric}
    assert set(metrics) >= {"Duration", "Agent talk", "Customer talk", "Silence", "Overlap", "Sentences"}
    players = at.get("audio")
    assert len(players) == 2  # one per channel, from the claim-check blob
    buttons = [b for b in at.button if b.key and b.key.startswith("play-")]
    assert buttons and not any(b.disabled for b in buttons)
    buttons[3].click()
    at.run()
    assert not at.exception
    play = at.session_state["call.play"]
    assert play[0] == seeded.sample_call_id
    started = [p.proto.start_time for p in at.get("audio")]
    assert started[play[1]] == int(play[2]) and started[1 - play[1]] == 0
    assert any(p.proto.autoplay for p in at.get("audio"))


def test_call_page_without_audio_explains_how_to_attach_it(seeded):
    other = next(c for c in seeded.store.list_calls(limit=5) if c.id != seeded.sample_call_id)
    at = run_page(seeded, "call", "maria", **{"call.selected": other.id})
    assert "callsense dashboard attach-audio" in texts(at)
    assert all(b.disabled for b in at.button if b.key and b.key.startswith("play-"))


def test_an_agent_cannot_open_another_agents_call_page(seeded):
    theirs = next(c for c in seeded.store.list_calls(limit=50, agent_id="ag-2"))
    at = run_page(seeded, "call", "ag-1", **{"call.selected": theirs.id})
    assert f"You may not open call `{theirs.id}`." in texts(at)
    options = at.selectbox(key="call.picker").options
    assert options and all("agent ag-1" in o for o in options)  # only their own calls are offered
    assert at.title[0].value != theirs.source_name


def test_agents_page_for_a_manager_compares_the_team_and_drills_down(seeded):
    at = run_page(seeded, "agents", "maria")
    assert "Team, last 30 days" in [s.value for s in at.subheader]
    assert at.selectbox(key="agents.agent").options == ["ag-1", "ag-2", "ag-3", "ag-4"]
    assert {m.label for m in at.metric} >= {"Calls", "Customer sentences", "Positive customers", "Negative customers"}
    at.selectbox(key="agents.agent").select("ag-3").run()
    assert "Agent ag-3, last 30 days" in [s.value for s in at.subheader]
    pick = at.selectbox(key="agents.open.ag-3")
    chosen = pick.value
    at.button(key="agents.open-button").click().run()
    assert at.session_state["test.went_to"] == "call" and at.session_state["call.selected"] == chosen


def test_agents_page_for_an_agent_shows_only_their_own_history(seeded):
    at = run_page(seeded, "agents", "ag-2")
    subheaders = [s.value for s in at.subheader]
    assert "Agent ag-2, last 30 days" in subheaders
    assert not any(s.startswith("Team") for s in subheaders)
    assert not [s for s in at.selectbox if s.key == "agents.agent"]
    assert "ag-1" not in texts(at)


def test_review_page_accepts_and_corrects_labels(seeded):
    at = run_page(seeded, "review", "rita")
    waiting = int({m.label: m.value for m in at.metric}["Waiting"])
    next(b for b in at.button if b.label == "Accept prediction").click()
    at.run()
    assert not at.exception
    assert int({m.label: m.value for m in at.metric}["Waiting"]) == waiting - 1
    # Correct the next one: another label and fixed words.
    control = next(c for c in at.get("button_group") if c.key and c.key.startswith("review.sentiment."))
    original = control.value
    new = "positive" if original != "positive" else "negative"
    control.set_value(new)
    area = next(t for t in at.text_area if t.key.startswith("review.text."))
    area.input("The corrected words.")
    next(b for b in at.button if b.label == "Save correction").click()
    at.run()
    assert not at.exception
    with Session(seeded.engine) as s:
        rows = list(s.exec(select(LabelReview).order_by(LabelReview.id)).all())
    assert [r.action for r in rows] == ["accepted", "corrected"]
    assert rows[1].sentiment == new and rows[1].original_sentiment == original and rows[1].text == "The corrected words."
    assert {r.reviewer for r in rows} == {"rita"} and all(r.reviewed_at > time.time() - 60 for r in rows)
    assert len(at.dataframe) == 1  # recent reviews


def test_review_queue_skip_moves_on(seeded):
    at = run_page(seeded, "review", "rita")
    first = next(t for t in at.text_area if t.key.startswith("review.text.")).key
    next(b for b in at.button if b.label == "Skip").click()
    at.run()
    assert next(t for t in at.text_area if t.key.startswith("review.text.")).key != first


def test_models_page_without_a_fine_tuning_workspace_says_what_to_run(seeded):
    at = run_page(seeded, "models", "maria")
    assert "No fine-tuning workspace yet." in texts(at) and "callsense finetune sentiment --dataset REF" in texts(at)
    assert "Labelled data so far" in [s.value for s in at.subheader]


# --------------------------------------------------------------------------- the registry


def test_a_page_is_added_by_one_module(tmp_path, monkeypatch):
    (tmp_path / "extra_dash_page.py").write_text(textwrap.dedent('''
        import streamlit as st
        from callsense.dashboard.registry import page

        @page("assistant", title="Assistant", order=60, roles=("manager",))
        def assistant_page(ctx):
            st.title("Assistant")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    keys = [p.key for p in load_pages(["extra_dash_page", "callsense.not_installed.dashboard_page"])]
    assert keys == ["live", "call", "agents", "review", "assistant", "models"]
    (tmp_path / "broken_dash_page.py").write_text("import callsense.no_such_module\n")
    with pytest.raises(ModuleNotFoundError):
        load_pages(["broken_dash_page"])
    sys.modules.pop("extra_dash_page", None)
    from callsense.dashboard import registry

    registry._PAGES.pop("assistant", None)


def test_a_sentiment_chart_is_built_once_per_set_of_sentences():
    """The Live page redraws each chart every refresh: the spec is reused only for the same data."""
    from callsense.dashboard import ui
    from callsense.store.schema import Sentence

    said = [Sentence(call_id="c", channel=0, utterance_idx=i, idx=0, speaker="agent", text=f"sentence {i}",
                     start=2.0 * i, end=2.0 * i + 1, sentiment="neutral", confidence=0.9) for i in range(3)]
    spec = ui._sentiment_chart_spec(said, "agent", 10.0)
    assert spec is not None and ui._sentiment_chart_spec(list(said), "agent", 10.0) is spec
    relabelled = said[:2] + [Sentence(**{**said[2].model_dump(), "sentiment": "negative"})]
    assert ui._sentiment_chart_spec(relabelled, "agent", 10.0) is not spec
    assert ui._sentiment_chart_spec(said, "agent", 12.0) is not spec  # another time axis
    assert ui._sentiment_chart_spec(said, "customer", 10.0) is None
