"""In headless Chromium: an alert shows on the Live page while a live demo call is written
(as the store stage writes it, categories included)."""

from __future__ import annotations

import threading

from callsense.dashboard import demo

from dash_support import serve_dashboard
from test_browser import browser, no_exceptions, page, shot, sign_in  # noqa: F401  (fixtures)


def test_an_alert_appears_on_the_live_page_during_a_live_call(seeded, page, tmp_path):  # noqa: F811
    with serve_dashboard(seeded.env, tmp_path / "dash.log") as served:
        sign_in(page, served.url, "maria")
        page.get_by_text("No calls in progress.").wait_for()
        stop = threading.Event()
        call = demo.play_live_call(seeded.store, "live-alert", "billing", agent_id="ag-1", speed=1e6, mood=0.0,
                                   stop=stop, source_name="Refund call (live)")
        try:
            for ev in call:
                if "refund" in ev.text.lower():
                    break  # the matching sentence is stored; the call is held here, still in progress
            assert seeded.store.get_call("live-alert").status == "processing"
            assert [c.category for c in seeded.store.categories("live-alert")] == ["refund"]
            page.get_by_role("heading", name="Refund call (live)").wait_for(timeout=60_000)
            page.locator('.cs-cat[data-category="refund"]').first.wait_for(timeout=60_000)
            assert "refund" in page.locator('.cs-cat[data-category="refund"]').first.inner_text()
            no_exceptions(page)
            shot(page, "07-live-alert")
        finally:
            stop.set()
            call.close()
