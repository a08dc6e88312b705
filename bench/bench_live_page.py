"""Live page latency: a live call's sentence written to the store -> shown on the dashboard's
open Live page, in headless Chromium (goal: <= 1 s; the live panel refreshes every
`CALLSENSE_DASHBOARD_REFRESH_S`).

Starts `callsense dashboard` on a scratch SQLite store, signs in, keeps the Live page open,
then writes scripted live calls sentence by sentence, the way the pipeline's store stage
writes a live call (`callsense.dashboard.demo.play_live_call`), and times each sentence
from its write until the page's text contains it. (tests/dashboard/test_browser.py checks
that the sentences show up during the call; this measures how fast.)

    python bench/bench_live_page.py [--calls 3] [--speed 1.0] [--json out.json]

Needs the `dashboard` and `test` extras (Streamlit, Playwright) and Chromium
(/usr/bin/chromium, or the path in CALLSENSE_CHROMIUM).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import percentile

from callsense.core.settings import Settings
from callsense.dashboard import demo
from callsense.dashboard.auth import UserDirectory
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore

CHROMIUM = os.environ.get("CALLSENSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
USER, PASSWORD = "bench", "bench-pw-1"
GOAL_S = 1.0
SCRIPTS = list(demo.SCRIPTS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(data_dir: Path, log: Path):
    """`callsense dashboard` on a free port, in its own process group (stopped with it)."""
    port = free_port()
    env = {**os.environ, "CALLSENSE_DATA_DIR": str(data_dir)}
    env.pop("CALLSENSE_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "callsense", "dashboard", "--port", str(port)], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the dashboard did not start:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def open_live_page(playwright, url: str):
    """Headless Chromium signed in as the bench manager, on the Live page: (browser, page)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1440, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("textbox", name="User name").fill(USER)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()
    page.get_by_role("heading", name="Live calls").wait_for()
    return browser, page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3, help="Scripted live calls, one after the other.")
    parser.add_argument("--speed", type=float, default=1.0, help="Pace of the calls (1.0: real time).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        sys.exit(f"no Chromium at {CHROMIUM} (Debian package `chromium`, or set CALLSENSE_CHROMIUM)")
    tmp = tempfile.TemporaryDirectory(prefix="bench-live-page-")
    data_dir = Path(tmp.name) / "data"
    settings = Settings(data_dir=data_dir)
    store = ResultStore(make_engine(settings.resolved_database_url))
    UserDirectory(store.engine).add_user(USER, PASSWORD, ["manager"], name="Bench")

    latencies: list[float] = []
    with dashboard(data_dir, Path(tmp.name) / "dashboard.log") as url, sync_playwright() as p:
        browser, page = open_live_page(p, url)
        for n in range(args.calls):
            script = SCRIPTS[n % len(SCRIPTS)]
            # Each sentence is timed from its write until the page shows it; the call waits
            # meanwhile (the next sentence is written at once if its time has passed).
            for ev in demo.play_live_call(store, f"bench-live-{n}", script, agent_id="ag-1", speed=args.speed,
                                          source_name=f"Bench call {n} ({script})"):
                written = time.time()
                page.wait_for_function("t => document.body.innerText.includes(t)", arg=ev.sentences[0].text, polling=20)
                latencies.append(time.time() - written)
        browser.close()
    tmp.cleanup()

    result = {
        "sentences": len(latencies), "calls": args.calls,
        "p50_s": round(percentile(latencies, 0.50), 3), "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3), "mean_s": round(statistics.fmean(latencies), 3),
        "goal_s": GOAL_S, "meets_goal": percentile(latencies, 0.95) <= GOAL_S,
        "load_average": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
    }
    print(f"{result['sentences']} sentences over {args.calls} live call(s), written -> shown on the Live page: "
          f"p50 {result['p50_s']:.2f} s, p95 {result['p95_s']:.2f} s, max {result['max_s']:.2f} s "
          f"-> goal p95 <= {GOAL_S:g} s {'met' if result['meets_goal'] else 'NOT met'} "
          f"(load average {result['load_average']} on {result['cpus']} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
