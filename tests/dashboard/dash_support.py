"""Helpers shared by the dashboard tests (a uniquely named module, so importing it cannot
pick up another folder's conftest): stores filled through ResultStore.apply as the
pipeline's store stage fills them, users with each role, and a served dashboard."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from callsense.ingest.results import result_rows
from callsense.core.settings import Settings
from callsense.dashboard import demo
from callsense.dashboard.auth import UserDirectory
from callsense.store.blobs import BlobStore
from callsense.ingest.sources import call_id_for
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
PASSWORDS = {"maria": "maria-pw-1", "ag-1": "agent-one-pw", "ag-2": "agent-two-pw", "rita": "rita-pw-1"}


@dataclass
class DashStore:
    settings: Settings
    store: ResultStore
    env: dict[str, str]
    sample_call_id: str | None = None

    @property
    def engine(self):
        return self.store.engine


def add_users(engine) -> None:
    users = UserDirectory(engine)
    users.add_user("maria", PASSWORDS["maria"], ["manager", "reviewer"], name="Maria Lopez")
    users.add_user("ag-1", PASSWORDS["ag-1"], ["agent"], name="Alex (agent 1)")
    users.add_user("ag-2", PASSWORDS["ag-2"], ["agent"], name="Bea (agent 2)")
    users.add_user("rita", PASSWORDS["rita"], ["reviewer"], name="Rita Reviewer")


def make_dash_store(data_dir: Path, database_url: str | None = None) -> DashStore:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    env = {**os.environ, "CALLSENSE_DATA_DIR": str(data_dir)}
    env.pop("CALLSENSE_DATABASE_URL", None)
    if database_url:
        env["CALLSENSE_DATABASE_URL"] = database_url
    return DashStore(settings, ResultStore(make_engine(settings.resolved_database_url)), env)


def add_sample_call(ds: DashStore, sample: Path, agent_id: str = "ag-1") -> str:
    """A recorded call whose original file is in the blob store under the claim-check name,
    as `callsense process` leaves it (scripted sentences stand in for the transcript)."""
    data = sample.read_bytes()
    call_id = call_id_for(sample, data)
    ref = BlobStore(ds.settings.resolved_blob_dir, ds.settings.pipeline.inline_audio_max_bytes).put(data)
    assert ref.blob, "the sample must be larger than the inline limit to travel by claim-check"
    rng = random.Random(5)
    turns = demo.script_turns("delivery", rng)
    ds.store.apply(result_rows(demo.call_events(call_id, turns, agent_id=agent_id, started_at=time.time() - 3600,
                                    source_name=sample.name, rng=rng)))
    return call_id


# --------------------------------------------------------------------------- served app


@dataclass
class ServedDashboard:
    url: str
    proc: subprocess.Popen
    log: Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(env: dict[str, str], log: Path, extra_env: dict[str, str] | None = None):
    """`callsense dashboard --port P` as a subprocess, stopped by its PID afterwards."""
    port = free_port()
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "callsense", "dashboard", "--port", str(port)],
                            env={**env, **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer /_stcore/health in 90 s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield ServedDashboard(url, proc, log)
    finally:
        # The CLI and its Streamlit child share the process group this test started.
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        out.close()
