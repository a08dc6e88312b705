"""Live guidance latency (issue 15 §6), in headless Chromium against a served dashboard:

1. alert: a live call's sentence ends -> the alert it raises is visible on the manager's open
   Live page (goal: p95 <= 1 s);
2. note: a manager clicks "Send note" on the Live page -> the note is visible on the agent's
   own Live page ("My live call"), the agent signed in at the same time in a second browser
   context.

Scripted live demo calls are played in real time (`demo.play_live_call`, speed 1.0: each
sentence is written when its turn ends, as the pipeline's store stage writes a live call)
into a scratch SQLite store by a thread, never waiting for the browser. So that one call
raises many alerts, the category rules are the shipped ones plus one rule per scripted
sentence (a phrase of that sentence): the alert path (store, category evaluation after the
batch, `call_categories`, the Live page's fragment) is the one every rule takes.

Each time is taken in the browser: a MutationObserver stamps (Date.now(), same machine's
clock) the first moment an alert chip / a note is in the page, and is read afterwards.
Sentence end = the call's started_at + the sentence's end in the call.

    python bench/bench_alert_latency.py [--calls 2] [--notes 12] [--json out.json]

Needs the `dashboard` and `test` extras (Streamlit, Playwright) and Chromium
(/usr/bin/chromium, or the path in CALLSENSE_CHROMIUM).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import percentile
from bench_live_page import CHROMIUM, CHROMIUM_ARGS, dashboard

from callsense.core.settings import Settings
from callsense.dashboard import demo
from callsense.dashboard.auth import UserDirectory
from callsense.nlp.categories import RuleSet, load_rules, parse_rules
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore

MANAGER, AGENT, AGENT_ID = ("bench-mgr", "bench-mgr-pw-1"), ("bench-ag", "bench-ag-pw-1"), "ag-bench"
GOAL_S = 1.0
SCRIPTS = list(demo.SCRIPTS)

# Stamps the first time each alert chip (per live-call panel) and each note is in the page.
OBSERVER = """
(() => {
  window.__seen = {};
  const stamp = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll('.cs-cat[data-category]')) {
      const panel = el.closest('[class*="st-key-live-call-"]');
      if (!panel) continue;
      const m = panel.className.match(/st-key-live-call-(\\S+)/);
      const key = 'alert|' + m[1] + '|' + el.dataset.category;
      if (!(key in window.__seen)) window.__seen[key] = now;
    }
    for (const el of document.querySelectorAll('[class*="st-key-call-note-"]')) {
      const m = el.className.match(/st-key-call-note-(\\d+)/);
      const key = 'note|' + m[1];
      if (!(key in window.__seen) && el.innerText.trim()) window.__seen[key] = now;
    }
  };
  new MutationObserver(stamp).observe(document, {childList: true, subtree: true, characterData: true});
  // When the browser dispatches each "Send note" click (Playwright waits for the button to be
  // stable and hit-testable first): splits click -> stored into the click itself and the server.
  window.__clicks = [];
  document.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('button');
    if (b && b.innerText.includes('Send note')) window.__clicks.push(Date.now());
  }, true);
})();
"""


def cue_rules() -> tuple[RuleSet, dict[tuple[str, int], str]]:
    """The shipped rules plus one rule per scripted sentence; (script, turn) -> its category."""
    names: dict[tuple[str, int], str] = {}
    lines = ["categories:"]
    for script, turns in demo.SCRIPTS.items():
        for i, (_, text, _) in enumerate(turns):
            words = re.sub(r"[^a-z ]", " ", text.lower()).split()
            names[(script, i)] = name = f"cue-{script}-{i:02d}"
            lines += [f"  - name: {name}", f"    match: {{phrase: [{json.dumps(' '.join(words[:6]))}]}}"]
    rules = load_rules()
    rules.categories = rules.categories + parse_rules("\n".join(lines), "<bench cues>").categories
    return rules, names


def sign_in(page, url: str, user: tuple[str, str]) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(user[0])
    page.get_by_role("textbox", name="Password").fill(user[1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_s": round(percentile(values, 0.5), 3), "p95_s": round(percentile(values, 0.95), 3),
            "max_s": round(max(values), 3), "mean_s": round(statistics.fmean(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2, help="Scripted live calls, one after the other, in real time.")
    parser.add_argument("--notes", type=int, default=12, help="Notes the manager sends during the calls.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        sys.exit(f"no Chromium at {CHROMIUM} (Debian package `chromium`, or set CALLSENSE_CHROMIUM)")
    tmp = tempfile.TemporaryDirectory(prefix="bench-alert-latency-")
    data_dir = Path(tmp.name) / "data"
    store = ResultStore(make_engine(Settings(data_dir=data_dir).resolved_database_url))
    users = UserDirectory(store.engine)
    users.add_user(MANAGER[0], MANAGER[1], ["manager"], name="Bench manager")
    users.add_user(AGENT[0], AGENT[1], ["agent"], name="Bench agent", agent_id=AGENT_ID)
    rules, cue = cue_rules()

    expected: dict[str, float] = {}  # "alert|call|category" -> sentence end (wall clock)
    sent: dict[str, float] = {}  # "note|id" -> click time
    stored: dict[str, float] = {}  # "note|id" -> the row's created_at (the Send callback's write)
    calls_done = threading.Event()
    errors: list[BaseException] = []

    def play_calls() -> None:
        try:
            for n in range(args.calls):
                script = SCRIPTS[n % len(SCRIPTS)]
                call_id = f"bench-guide-{n}"
                turn = 0
                for ev in demo.play_live_call(store, call_id, script, agent_id=AGENT_ID, speed=1.0, mood=0.0,
                                              rules=rules, source_name=f"Bench call {n} ({script})"):
                    started = store.get_call(call_id).started_at
                    expected[f"alert|{call_id}|{cue[(script, turn)]}"] = started + ev.end
                    turn += 1
                time.sleep(1.5)  # the next call once this one has left the Live page
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            calls_done.set()

    load_before = os.getloadavg()
    with dashboard(data_dir, Path(tmp.name) / "dashboard.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for user in (MANAGER, AGENT):
            context = browser.new_context(viewport={"width": 1440, "height": 1400})
            context.add_init_script(OBSERVER)
            page = context.new_page()
            page.set_default_timeout(60_000)
            sign_in(page, url, user)
            pages.append(page)
        manager, agent = pages
        manager.get_by_role("heading", name="Live calls").wait_for()
        agent.get_by_role("heading", name="My live call").wait_for()

        writer = threading.Thread(target=play_calls, daemon=True)
        writer.start()
        # Notes from the manager's Live page, spread over the calls (the first once the panel is there).
        from sqlmodel import Session, select

        from callsense.store.review import CallNote

        interval = max(2.0, 40.0 * args.calls / max(1, args.notes))
        note_n = 0
        while note_n < args.notes and not calls_done.is_set():
            box = manager.locator("[class*='st-key-live-call-'] textarea").first
            try:
                box.wait_for(timeout=5_000)
            except Exception:
                continue
            text = f"Bench note {note_n}: offer the voucher."
            box.fill(text)
            clicked = time.time()
            manager.locator("[class*='st-key-live-call-']").get_by_role("button", name="Send note").first.click()
            deadline = time.time() + 10
            row = None
            while row is None and time.time() < deadline:
                with Session(store.engine) as s:
                    row = s.exec(select(CallNote).where(CallNote.text == text)).first()
                time.sleep(0.02)
            if row is not None:
                sent[f"note|{row.id}"] = clicked
                stored[f"note|{row.id}"] = row.created_at
                note_n += 1
            time.sleep(interval)
        calls_done.wait()
        time.sleep(3)  # let the last ones show
        seen = {**manager.evaluate("() => window.__seen"), **agent.evaluate("() => window.__seen")}
        clicks = [c / 1000 for c in manager.evaluate("() => window.__clicks")]
        browser.close()
    tmp.cleanup()
    if errors:
        raise errors[0]

    alert_lat = [seen[k] / 1000 - t for k, t in expected.items() if k in seen]
    note_lat = [seen[k] / 1000 - t for k, t in sent.items() if k in seen]
    note_store = [t - sent[k] for k, t in stored.items()]
    note_show = [seen[k] / 1000 - t for k, t in stored.items() if k in seen]
    # Each sent note's first dispatched click at or after its click() call began.
    dispatched = {k: next((c for c in clicks if c >= t - 0.001), None) for k, t in sent.items()}
    note_dispatch = [c - sent[k] for k, c in dispatched.items() if c is not None]
    note_server = [stored[k] - c for k, c in dispatched.items() if c is not None and k in stored]
    load = os.getloadavg()
    result = {
        "alerts": {**summary(alert_lat), "expected": len(expected), "missed": len(expected) - len(alert_lat)},
        "notes": {**summary(note_lat), "sent": len(sent), "missed": len(sent) - len(note_lat)},
        "notes_click_to_stored": summary(note_store),
        "notes_stored_to_agent": summary(note_show),
        "notes_each_s": [{"click_to_stored": round(stored[k] - sent[k], 3),
                          "stored_to_agent": round(seen[k] / 1000 - stored[k], 3) if k in seen else None}
                         for k in sent],
        "notes_click_call_to_dispatched": summary(note_dispatch),
        "notes_dispatched_to_stored": summary(note_server),
        "goal_p95_s": GOAL_S,
        "alerts_meet_goal": bool(alert_lat) and percentile(alert_lat, 0.95) <= GOAL_S,
        "notes_meet_goal": bool(note_lat) and percentile(note_lat, 0.95) <= GOAL_S,
        "calls": args.calls, "refresh_s": Settings().dashboard.refresh_s,
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
    }
    a, n = result["alerts"], result["notes"]
    print(f"alert: sentence end -> visible on the manager's Live page: {a.get('n', 0)} alerts "
          f"(missed {a['missed']}), p50 {a.get('p50_s', float('nan')):.2f} s, p95 {a.get('p95_s', float('nan')):.2f} s, "
          f"max {a.get('max_s', float('nan')):.2f} s -> goal p95 <= {GOAL_S:g} s "
          f"{'met' if result['alerts_meet_goal'] else 'NOT met'}")
    print(f"note: Send clicked -> visible on the agent's Live page: {n.get('n', 0)} notes (missed {n['missed']}), "
          f"p50 {n.get('p50_s', float('nan')):.2f} s, p95 {n.get('p95_s', float('nan')):.2f} s, "
          f"max {n.get('max_s', float('nan')):.2f} s -> {'met' if result['notes_meet_goal'] else 'NOT met'}")
    print(f"  of which: click -> stored p50 {result['notes_click_to_stored'].get('p50_s', float('nan')):.2f} s, "
          f"p95 {result['notes_click_to_stored'].get('p95_s', float('nan')):.2f} s; stored -> on the agent's screen "
          f"p50 {result['notes_stored_to_agent'].get('p50_s', float('nan')):.2f} s, "
          f"p95 {result['notes_stored_to_agent'].get('p95_s', float('nan')):.2f} s")
    print(f"  click -> stored = Playwright's click() until the browser dispatches it p50 "
          f"{result['notes_click_call_to_dispatched'].get('p50_s', float('nan')):.2f} s, p95 "
          f"{result['notes_click_call_to_dispatched'].get('p95_s', float('nan')):.2f} s; dispatched -> stored p50 "
          f"{result['notes_dispatched_to_stored'].get('p50_s', float('nan')):.2f} s, p95 "
          f"{result['notes_dispatched_to_stored'].get('p95_s', float('nan')):.2f} s")
    print(f"load average {result['load_average_before']} before, {result['load_average_after']} after, "
          f"on {result['cpus']} CPUs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
