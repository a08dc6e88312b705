"""In headless Chromium, two people signed in at once (two browser contexts): a manager on
the Live page sends a note during a live demo call of agent ag-1, and the note appears on
the agent's own Live page, as typed. How fast is measured by bench/bench_alert_latency.py,
not asserted here."""

from __future__ import annotations

import threading

from sqlmodel import Session, select

from callsense.dashboard import demo
from callsense.store.review import CallNote

from dash_support import serve_dashboard
from test_browser import VIEWPORT, browser, no_exceptions, shot, sign_in  # noqa: F401  (fixtures)

NOTE = "**Offer the refund** for the second charge, <b>then</b> close [politely](https://example.com)."


def test_a_managers_note_appears_on_the_agents_screen_during_the_call(seeded, browser, tmp_path):  # noqa: F811
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    manager, agent = (c.new_page() for c in contexts)
    for pg in (manager, agent):
        pg.set_default_timeout(60_000)
    stop = threading.Event()
    call = demo.play_live_call(seeded.store, "live-guided", "billing", agent_id="ag-1", speed=1e6, mood=0.0,
                               stop=stop, source_name="Guided call (live)")
    try:
        with serve_dashboard(seeded.env, tmp_path / "dash.log") as served:
            first = [next(call).sentences[0].text for _ in range(3)][0]  # held here: still in progress
            sign_in(agent, served.url, "ag-1")
            agent.get_by_role("heading", name="My live call").wait_for()
            agent.wait_for_function("t => document.body.innerText.includes(t)", arg=first, polling=100, timeout=60_000)

            sign_in(manager, served.url, "maria")
            panel = manager.locator(".st-key-live-call-live-guided")
            panel.get_by_role("heading", name="Guided call (live)").wait_for()
            box = panel.get_by_role("textbox", name="Send a note to the agent")
            box.fill(NOTE)
            manager.wait_for_timeout(1500)  # a few refreshes of the panel: the typed note stays in the box
            assert box.input_value() == NOTE
            panel.get_by_role("button", name="Send note").click()
            manager.get_by_text("Sent: the agent sees it on their Live page.").wait_for()

            # On the agent's screen without a reload, shown as typed (no bold, no link, no HTML).
            agent.wait_for_function("t => document.body.innerText.includes(t)", arg=NOTE, polling=50, timeout=60_000)
            note = agent.locator("[class*='st-key-call-note-']").first
            assert note.locator("strong, b, a").count() == 0, note.inner_html()
            assert note.inner_text().startswith("maria · ")
            with Session(seeded.engine) as s:
                rows = s.exec(select(CallNote)).all()
            assert [(r.call_id, r.author, r.agent_id, r.text) for r in rows] == [("live-guided", "maria", "ag-1", NOTE)]
            for pg in (manager, agent):
                no_exceptions(pg)
            shot(agent, "08-agent-live-note")
            shot(manager, "09-manager-note-sent")
    finally:
        stop.set()
        call.close()
        for c in contexts:
            c.close()
