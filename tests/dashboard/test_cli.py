"""`callsense dashboard ...`: users, password hashes, attaching audio, and the server's health."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import bcrypt
import yaml

from callsense.ingest.results import result_rows
from callsense.dashboard.auth import UserDirectory, load_users_file, users_file
from callsense.dashboard.audio import locate_call_audio

from dash_support import REPO, make_dash_store, serve_dashboard


def cli(env, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callsense", "dashboard", *args], env={**env, "COLUMNS": "200"},
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_add_list_and_remove_users(tmp_path):
    ds = make_dash_store(tmp_path / "data")
    out = cli(ds.env, "add-user", "maria", "--role", "manager", "--role", "reviewer", "--name", "Maria Lopez",
              "--password-stdin", stdin="s3cret-pw\n")
    assert out.returncode == 0, out.stderr
    assert cli(ds.env, "add-user", "ag-7", "-r", "agent", "--password-stdin", stdin="pw7\n").returncode == 0
    users = UserDirectory(ds.engine)
    assert users.authenticate("maria", "s3cret-pw").roles == frozenset({"manager", "reviewer"})
    assert users.authenticate("maria", "wrong") is None
    assert users.authenticate("ag-7", "pw7").agent_id == "ag-7"
    listed = cli(ds.env, "users").stdout
    assert "maria" in listed and "manager, reviewer" in listed and "ag-7" in listed
    again = cli(ds.env, "add-user", "maria", "-r", "manager", "--password-stdin", stdin="x\n")
    assert again.returncode == 1 and "exists" in again.stderr
    bad = cli(ds.env, "add-user", "bob", "-r", "boss", "--password-stdin", stdin="x\n")
    assert bad.returncode == 1 and "unknown role 'boss'" in bad.stderr
    assert cli(ds.env, "remove-user", "ag-7").returncode == 0
    assert users.authenticate("ag-7", "pw7") is None


def test_users_from_the_yaml_file(tmp_path):
    ds = make_dash_store(tmp_path / "data")
    hashed = cli(ds.env, "hash-password", "--password-stdin", stdin="from-file-pw\n").stdout.strip()
    assert bcrypt.checkpw(b"from-file-pw", hashed.encode())
    path = users_file(ds.settings)
    path.write_text(yaml.safe_dump({"users": {"lee": {"name": "Lee", "password": hashed, "roles": ["agent"],
                                                       "agent_id": "ag-9"}}}))
    user = UserDirectory(ds.engine, path).authenticate("lee", "from-file-pw")
    assert user is not None and user.agent_id == "ag-9" and user.roles == frozenset({"agent"})
    assert "lee" in cli(ds.env, "users").stdout
    # A plain-text password is refused with the fix in the message.
    path.write_text(yaml.safe_dump({"users": {"lee": {"password": "plain", "roles": ["agent"]}}}))
    try:
        load_users_file(path)
    except ValueError as e:
        assert "bcrypt hash" in str(e) and "hash-password" in str(e) and str(path) in str(e)
    else:
        raise AssertionError("a plain-text password was accepted")


def test_attach_audio_gives_a_call_its_recording(tmp_path):
    ds = make_dash_store(tmp_path / "data")
    from callsense.dashboard import demo
    import random

    rng = random.Random(1)
    ds.store.apply(result_rows(demo.call_events("live-xyz", demo.script_turns("router", rng), agent_id="ag-1",
                                    started_at=1.0, mode="live", rng=rng)))
    call = ds.store.get_call("live-xyz")
    assert locate_call_audio(ds.engine, ds.settings, call) is None
    sample = REPO / "samples" / "router-setup.mp3"
    out = cli(ds.env, "attach-audio", "live-xyz", str(sample))
    assert out.returncode == 0, out.stderr
    found = locate_call_audio(ds.engine, ds.settings, call)
    assert found is not None and found.found_by == "attached"
    assert cli(ds.env, "attach-audio", "no-such-call", str(sample)).returncode == 1


def test_recorded_call_audio_is_found_by_its_claim_check(seeded):
    call = seeded.store.get_call(seeded.sample_call_id)
    found = locate_call_audio(seeded.engine, seeded.settings, call)
    assert found is not None and found.found_by == "claim-check"
    from callsense.dashboard.audio import channel_tracks, read_blob
    from callsense.audio.decode import decode_audio

    tracks = channel_tracks(read_blob(seeded.settings, found), call.channels)
    assert len(tracks) == 2
    original = decode_audio((REPO / "samples" / "late-delivery.mp3").read_bytes())
    assert abs(decode_audio(tracks[0]).duration_s - original.duration_s) < 0.2


def test_the_server_answers_its_health_check(seeded, tmp_path):
    with serve_dashboard(seeded.env, tmp_path / "dash.log") as served:
        with urllib.request.urlopen(f"{served.url}/_stcore/health", timeout=5) as r:
            assert r.read().strip() == b"ok"
        with urllib.request.urlopen(served.url, timeout=5) as r:
            assert b"<html" in r.read().lower()
    assert served.proc.poll() is not None  # stopped with its Streamlit child

