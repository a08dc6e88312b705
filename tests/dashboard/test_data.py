"""The data layer: roles enforced in the queries, aggregates, the review queue and the
labelled data fine-tuning reads; on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from callsense.ingest.results import result_rows
from callsense.dashboard import demo
from callsense.dashboard.data import DAY, AccessDenied, DashboardData, SentenceKey, User, labelled_sentences
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore

MANAGER = User("maria", frozenset({"manager"}))
REVIEWER = User("rita", frozenset({"reviewer"}))


@pytest.fixture
def ag():
    """Agent ids of this test only (the PostgreSQL database is shared by the session)."""
    suffix = uuid.uuid4().hex[:6]
    return {n: f"ag-{n}-{suffix}" for n in (1, 2)}


def agent_user(agent_id: str) -> User:
    return User(agent_id, frozenset({"agent"}), agent_id=agent_id)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> ResultStore:
    url = f"sqlite:///{tmp_path / 'cs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    return ResultStore(engine)


def add_call(store, agent_id, script="billing", *, started_at=None, mood=0.0, seed=1, mode="recorded", finish=True) -> str:
    rng = random.Random(seed)
    call_id = f"{script}-{uuid.uuid4().hex[:10]}"
    events = demo.call_events(call_id, demo.script_turns(script, rng, mood=mood), agent_id=agent_id,
                              started_at=started_at or time.time() - 600, mode=mode, rng=rng)
    store.apply(result_rows(events if finish else events[:-1]))
    return call_id


def test_an_agent_cannot_read_another_agents_call(store, ag):
    mine = add_call(store, ag[1])
    theirs = add_call(store, ag[2])
    agent = DashboardData(store.engine, agent_user(ag[1]))
    assert agent.call(mine).agent_id == ag[1]
    assert agent.sentences(mine)
    for read in (agent.call, agent.sentences, agent.utterances, agent.talk_stats, agent.corrections):
        with pytest.raises(AccessDenied):
            read(theirs)
    # Lists are filtered in the query, not afterwards.
    assert {c.id for c in agent.calls()} == {mine}
    assert agent.agents() == [ag[1]]
    with pytest.raises(AccessDenied):
        agent.agent_history(ag[2], 30)
    with pytest.raises(AccessDenied):
        agent.agent_calls(ag[2], 30)
    with pytest.raises(AccessDenied):
        agent.team_comparison(30)
    with pytest.raises(AccessDenied):
        agent.review_queue()
    # ... while a manager reads both, and a reviewer reads calls to judge sentences in context.
    manager = DashboardData(store.engine, MANAGER)
    assert {c.id for c in manager.calls()} >= {mine, theirs}
    assert DashboardData(store.engine, REVIEWER).sentences(theirs)


def test_an_agent_without_an_agent_id_sees_nothing(store, ag):
    add_call(store, ag[1])
    nobody = DashboardData(store.engine, User("temp", frozenset({"agent"}), agent_id=None))
    assert nobody.calls() == [] and nobody.agents() == []


def test_live_calls_are_the_unfinished_live_ones_and_flag_negative_streaks(store, ag):
    live = add_call(store, ag[1], "billing", mode="live", mood=-1.0, finish=False)
    done_live = add_call(store, ag[1], "router", mode="live")
    add_call(store, ag[1], "router")  # recorded
    stale = add_call(store, ag[1], "router", mode="live", finish=False, started_at=time.time() - 10 * 3600)
    data = DashboardData(store.engine, MANAGER, live_window_h=4, negative_streak_n=3)
    calls = [c for c in data.live_calls() if c.agent_id == ag[1]]
    assert [c.id for c in calls] == [live]
    (view,) = data.live_overview(calls)
    assert view.streak.flagged and view.streak.longest >= 3
    assert view.sentences == len(data.sentences(live))
    assert done_live in {c.id for c in data.finished_live_calls()}
    assert stale not in {c.id for c in calls}
    # An agent sees their own live call only.
    assert DashboardData(store.engine, agent_user(ag[2])).live_calls() == []


def test_agent_history_counts_match_the_rows(store, ag):
    now = time.time()
    ids = [add_call(store, ag[1], "billing", started_at=now - d * DAY - 100, seed=d) for d in (1, 2, 2.2, 40)]
    add_call(store, ag[2], "router", started_at=now - DAY)
    data = DashboardData(store.engine, MANAGER, clock=lambda: now)
    rows = data.agent_history(ag[1], 30)
    assert sum(r.calls for r in rows) == 3  # the 40-day-old call is outside 30 days
    expected = [s for cid in ids[:3] for s in data.sentences(cid) if s.speaker == "customer"]
    assert sum(sum(r.customer.values()) for r in rows) == len(expected)
    assert sum(r.customer["negative"] for r in rows) == sum(1 for s in expected if s.sentiment == "negative")
    assert sum(r.calls for r in data.agent_history(ag[1], 90)) == 4
    assert [r.call.id for r in data.agent_calls(ag[1], 30)] == ids[:3]  # newest first


def test_team_comparison_and_average(store, ag):
    now = time.time()
    for seed in range(3):
        add_call(store, ag[1], "billing", started_at=now - 3600, mood=-1.0, seed=seed)
        add_call(store, ag[2], "router", started_at=now - 3600, mood=1.0, seed=seed)
    data = DashboardData(store.engine, MANAGER, clock=lambda: now)
    everyone = {t.agent_id: t for t in data.team_comparison(7)}
    totals = {a: everyone[a] for a in ag.values()}
    assert totals[ag[1]].calls == 3 and totals[ag[2]].calls == 3
    assert totals[ag[1]].customer_share("negative") > totals[ag[2]].customer_share("negative")
    team = DashboardData(store.engine, agent_user(ag[1]), clock=lambda: now).team_average(7)
    assert team.calls == sum(t.calls for t in everyone.values())
    assert sum(team.customer.values()) == sum(sum(t.customer.values()) for t in everyone.values())


def test_review_queue_is_lowest_confidence_first_and_skips_reviewed(store, ag):
    add_call(store, ag[1], "billing", seed=3)
    add_call(store, ag[2], "delivery", seed=4)
    data = DashboardData(store.engine, REVIEWER)
    first = data.review_queue(limit=5)
    confidences = [i.sentence.confidence for i in first]
    assert confidences == sorted(confidences)
    lowest = first[0].sentence
    assert any(c.id == lowest.id for c in first[0].context)
    data.record_review(first[0].key, sentiment=lowest.sentiment)
    assert first[0].key not in {i.key for i in data.review_queue(limit=50)}
    skipped = data.review_queue(limit=1, skip=[first[1].key])[0]
    assert skipped.key == first[2].key
    customer_only = data.review_queue(limit=20, speaker="customer")
    assert customer_only and all(i.sentence.speaker == "customer" for i in customer_only)
    sample = data.review_queue(order="sample", limit=3, rng=random.Random(1))
    assert len(sample) == 3


def test_corrections_become_labelled_data_with_who_and_when(store, ag):
    call_id = add_call(store, ag[1], "billing", seed=9)
    rita = DashboardData(store.engine, REVIEWER, clock=lambda: 1_000_000.0)
    before = rita.review_counts()
    sentences = DashboardData(store.engine, MANAGER).sentences(call_id)
    a, b, c = sentences[:3]
    accepted = rita.record_review(SentenceKey.of(a), sentiment=a.sentiment)
    assert accepted.action == "accepted" and accepted.reviewer == "rita" and accepted.reviewed_at == 1_000_000.0
    new_label = "negative" if b.sentiment != "negative" else "positive"
    corrected = rita.record_review(SentenceKey.of(b), sentiment=new_label, text="  I was charged twice.  ")
    assert corrected.action == "corrected" and corrected.original_sentiment == b.sentiment
    # A later review of the same sentence wins; the earlier one stays as history.
    rita.record_review(SentenceKey.of(c), sentiment="negative", text=c.text)
    second = DashboardData(store.engine, User("ron", frozenset({"reviewer"})), clock=lambda: 1_000_100.0)
    second.record_review(SentenceKey.of(c), sentiment="positive")

    labelled = {(x.call_id, x.channel, x.utterance_idx, x.idx): x for x in labelled_sentences(store.engine)
                if x.call_id == call_id}
    assert len(labelled) == 3
    lb = labelled[(b.call_id, b.channel, b.utterance_idx, b.idx)]
    assert (lb.label, lb.text, lb.original_label, lb.original_text) == (new_label, "I was charged twice.", b.sentiment, b.text)
    lc = labelled[(c.call_id, c.channel, c.utterance_idx, c.idx)]
    assert (lc.label, lc.reviewer) == ("positive", "ron")
    corrected_keys = {(x.channel, x.utterance_idx, x.idx) for x in labelled_sentences(store.engine, corrected_only=True)
                      if x.call_id == call_id}
    assert corrected_keys == {(b.channel, b.utterance_idx, b.idx)} | ({(c.channel, c.utterance_idx, c.idx)} if c.sentiment != "positive" else set())
    assert len([r for r in rita.recent_reviews(limit=100) if r.call_id == call_id]) == 4
    counts = rita.review_counts()
    assert counts["reviewed"] - before["reviewed"] == 3 and counts["waiting"] == counts["sentences"] - counts["reviewed"]
    # The call view shows the reviewed label.
    fixes = DashboardData(store.engine, MANAGER).corrections(call_id)
    assert fixes[SentenceKey.of(b)].sentiment == new_label


def test_only_reviewers_record_reviews_and_labels_are_checked(store, ag):
    call_id = add_call(store, ag[1])
    s = DashboardData(store.engine, MANAGER).sentences(call_id)[0]
    with pytest.raises(AccessDenied):
        DashboardData(store.engine, MANAGER).record_review(SentenceKey.of(s), sentiment="negative")
    with pytest.raises(ValueError):
        DashboardData(store.engine, REVIEWER).record_review(SentenceKey.of(s), sentiment="angry")
    with pytest.raises(LookupError):
        DashboardData(store.engine, REVIEWER).record_review(SentenceKey("nope", 0, 0, 0), sentiment="neutral")
