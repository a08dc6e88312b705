"""Call characteristics and categories on the Call, Live and Agents pages (AppTest)."""

from __future__ import annotations

from callsense.dashboard import demo

from test_pages import run_page, texts


def test_call_page_shows_characteristics_per_speaker_and_categories(seeded):
    billing = next(c for c in seeded.store.list_calls(limit=100) if c.id.startswith("billing"))
    at = run_page(seeded, "call", "maria", **{"call.selected": billing.id})
    metrics = {m.label: m.value for m in at.metric}
    assert {"Non-talk time", "Longest silence", "Interruptions"} <= set(metrics)
    table = next(d for d in at.dataframe if "words/min" in d.value.columns)
    frame = table.value
    assert list(frame["speaker"]) == ["agent", "customer"]
    assert (frame["words/min"] > 0).all() and set(frame.columns) >= {"loudness (dBFS)", "interrupted others", "was interrupted"}
    body = texts(at)
    assert 'data-category="refund"' in body  # the billing script's agent issues a refund


def test_live_page_shows_alerts_and_filters_by_category(seeded):
    refunds = demo.play_live_call(seeded.store, "live-refund", "billing", agent_id="ag-1", speed=1e6, mood=0.0)
    for ev in refunds:
        if "refund" in ev.text.lower():
            break  # the sentence that matches the refund rule is stored; the call goes on
    quiet = demo.play_live_call(seeded.store, "live-quiet", "router", agent_id="ag-2", speed=1e6, mood=1.0)
    next(quiet)
    at = run_page(seeded, "live", "maria")
    assert {m.label: m.value for m in at.metric}["Alerts"] == "1"
    board = next(d for d in at.dataframe if "alerts" in d.value.columns).value
    assert dict(zip(board["id"], board["alerts"])) == {"live-refund": "refund", "live-quiet": ""}
    assert "🔔 refund" in texts(at)
    at.multiselect(key="live.categories").select("refund").run()
    assert not at.exception
    board = next(d for d in at.dataframe if "alerts" in d.value.columns).value
    assert list(board["id"]) == ["live-refund"]


def test_agents_page_shows_characteristic_trends_and_filters_calls_by_category(seeded):
    at = run_page(seeded, "agents", "maria")
    labels = {m.label for m in at.metric}
    assert {"Agent talk speed", "Agent loudness", "Silence share", "Interruptions per call"} <= labels
    assert any("Call characteristics per day" in m.value for m in at.markdown)
    calls = next(d for d in at.dataframe if "categories" in d.value.columns).value
    n_all = len(calls)
    picker = at.multiselect(key="agents.categories.ag-1")
    assert "refund" in picker.options
    picker.select("refund").run()
    assert not at.exception
    calls = next(d for d in at.dataframe if "categories" in d.value.columns).value
    assert 0 < len(calls) < n_all and all("refund" in c for c in calls["categories"])
