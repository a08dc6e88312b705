"""Fixtures for the dialog tests: a store per test, the assistant on a fixed date, flow
folders written on the fly, and real local HTTP servers standing in for WeatherStack,
Yelp Fusion and eBay Browse (http.server in a thread on a free loopback port)."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from callsense.core.settings import Settings

#: Day 0 of the offline forecast table in the tests: a Monday.
TEST_DAY = date(2025, 6, 2)


@pytest.fixture
def dialog_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'dialog.db'}",
                    nlu_backend="keywords", dialog_seed=11)


@pytest.fixture
def dialog_db(dialog_settings: Settings):
    from callsense.store.db import make_engine

    engine = make_engine(dialog_settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def keywords_nlu():
    from callsense.dialog.nlu.keywords import KeywordNlu

    return KeywordNlu()


@pytest.fixture
def make_assistant(dialog_settings: Settings, dialog_db, keywords_nlu):
    """Build an Assistant over this test's database; keyword args override settings."""
    from callsense.dialog.assistant import Assistant

    made = []

    def build(flows=None, nlu=None, seed: int | None = 11, **overrides) -> Assistant:
        settings = dialog_settings.model_copy(update=overrides) if overrides else dialog_settings
        assistant = Assistant(settings, flows=flows, nlu=nlu or keywords_nlu, db=dialog_db, seed=seed,
                              today=lambda: TEST_DAY)
        made.append(assistant)
        return assistant

    yield build
    for a in made:
        a.close()


@pytest.fixture
def write_flows(tmp_path: Path) -> Callable[..., Path]:
    """write_flows(main="yaml", other="yaml", ...) -> a folder with main.yml, other.yml, ..."""
    counter = [0]

    def write(**files: str) -> Path:
        counter[0] += 1
        folder = tmp_path / f"flows{counter[0]}"
        folder.mkdir()
        for name, text in files.items():
            (folder / f"{name}.yml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return folder

    return write


# ------------------------------------------------------------------- local HTTP servers


@dataclass
class Route:
    status: int = 200
    body: Any = None
    delay_s: float = 0.0
    raw: bytes | None = None  # sent as is (for "not JSON" answers)


@dataclass
class FakeApi:
    """A real HTTP server on 127.0.0.1; `routes[path]` says what each path answers and
    `requests` records (path, query, headers) of every request."""

    url: str
    routes: dict[str, Route | Callable[[dict], Route]] = field(default_factory=dict)
    requests: list[tuple[str, dict, dict]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def answer(self, path: str, status: int = 200, body: Any = None, *, raw: bytes | None = None,
               delay_s: float = 0.0) -> None:
        """What `path` answers from now on: a JSON body (or raw bytes), after a delay (a
        request still waiting when the test ends is let go then, unanswered)."""
        self.routes[path] = Route(status, body, delay_s, raw)

    def requests_to(self, path: str, at_least: int = 1, timeout: float = 60.0) -> int:
        """How many requests `path` received, once it has received `at_least` (a request the
        client has sent may still be in the server's accept queue for a moment)."""
        deadline = time.monotonic() + timeout
        while sum(r[0] == path for r in self.requests) < at_least and time.monotonic() < deadline:
            time.sleep(0.01)
        return sum(r[0] == path for r in self.requests)


@pytest.fixture
def fake_api():
    api_holder: dict[str, FakeApi] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802
            api = api_holder["api"]
            parsed = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
            api.requests.append((parsed.path, query, dict(self.headers)))
            route = api.routes.get(parsed.path)
            if callable(route):
                route = route(query)
            if route is None:
                route = Route(404, {"error": {"code": "NOT_FOUND", "description": f"no route {parsed.path}"}})
            deadline = time.monotonic() + route.delay_s
            while time.monotonic() < deadline and not api.stopping.is_set():
                time.sleep(0.01)
            body = route.raw if route.raw is not None else json.dumps(route.body).encode()
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api = FakeApi(url=f"http://127.0.0.1:{server.server_address[1]}")
    api_holder["api"] = api
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
