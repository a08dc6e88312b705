"""Blob names are sha256 only; `callsense blobs gc` removes what no live call needs."""

import os
import time

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from callsense.cli import app
from callsense.core.claims import AudioRef
from callsense.core.errors import BadInput
from callsense.core.settings import Settings
from callsense.ingest.pipeline import PipelineResources
from callsense.store.blobs import BlobStore
from callsense.store.schema import Call

DAY = 86400


def test_blob_names_are_sha256_only(tmp_path):
    store = BlobStore(tmp_path, 10)
    for name in ("../../etc/passwd", "ab", "A" * 64, "/" + "a" * 63):
        with pytest.raises(BadInput):
            store._path(name)
    with pytest.raises(BadInput):
        store.get(AudioRef.model_construct(blob="../x", inline=None, n_bytes=1))


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    monkeypatch.setenv("CALLSENSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CALLSENSE_DATABASE_URL", raising=False)
    monkeypatch.delenv("CALLSENSE_BLOB_DIR", raising=False)
    res = PipelineResources(Settings())
    now = time.time()
    blobs = {k: res.blobs.put(k.encode() * 100, keep=True).blob for k in ("recent", "old", "failed", "busy", "orphan", "young")}
    with Session(res.store.engine) as s:
        s.add(Call(id="meld_call_recent-0001", source_name="recent.wav", status="done", started_at=now - DAY,
                   finished_at=now - DAY, audio_blob=blobs["recent"]))
        s.add(Call(id="meld_call_old-0002", source_name="old.wav", status="done", started_at=now - 100 * DAY,
                   finished_at=now - 100 * DAY, audio_blob=blobs["old"]))
        s.add(Call(id="other-failed", source_name="failed.wav", status="failed", started_at=now, audio_blob=blobs["failed"]))
        s.add(Call(id="other-busy", source_name="busy.wav", status="processing", started_at=now - 200 * DAY, audio_blob=blobs["busy"]))
        s.commit()
    old = now - 2 * DAY
    os.utime(res.blobs._path(blobs["orphan"]), (old, old))
    tmp = res.blobs._path(blobs["recent"]).with_suffix(".tmp123")
    tmp.write_bytes(b"partial")
    os.utime(tmp, (now - 7200, now - 7200))
    return res, blobs, tmp


def test_gc_removes_failed_expired_orphaned_and_stale_temp(seeded):
    res, blobs, tmp = seeded
    runner = CliRunner()
    dry = runner.invoke(app, ["blobs", "gc", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0 and "would remove 4 files" in dry.stdout
    assert all(res.blobs._path(b).exists() for b in blobs.values()) and tmp.exists()
    done = runner.invoke(app, ["blobs", "gc"], catch_exceptions=False)
    assert done.exit_code == 0, done.stdout
    gone = {k for k, b in blobs.items() if not res.blobs._path(b).exists()}
    assert gone == {"old", "failed", "orphan"}  # recent (in retention), busy (processing), young (grace) stay
    assert not tmp.exists()
    assert "bytes freed" in done.stdout
    # A retention of 0 days keeps finished calls forever; --older-than-days overrides the setting.
    again = runner.invoke(app, ["blobs", "gc", "--older-than-days", "0.5"], catch_exceptions=False)
    assert "recent" not in {k for k, b in blobs.items() if res.blobs._path(b).exists()}, again.stdout


def test_show_takes_a_unique_prefix_or_source_name(seeded):
    runner = CliRunner()
    by_prefix = runner.invoke(app, ["show", "meld_call_o"], env={"COLUMNS": "200"})
    assert by_prefix.exit_code == 0 and "meld_call_old-0002" in by_prefix.stdout
    by_name = runner.invoke(app, ["show", "recent.wav"], env={"COLUMNS": "200"})
    assert by_name.exit_code == 0 and "meld_call_recent-0001" in by_name.stdout
    ambiguous = runner.invoke(app, ["show", "meld_call"], env={"COLUMNS": "200"})
    assert ambiguous.exit_code == 1
    assert "meld_call_old-0002" in ambiguous.output and "meld_call_recent-0001" in ambiguous.output
    assert runner.invoke(app, ["show", "nothing-like-it"]).exit_code == 1


def test_calls_never_cuts_the_id_at_80_columns(seeded):
    from callsense import cli

    res, _, _ = seeded
    from rich.console import Console

    long_id = "meld_call_a-very-long-source-file-name-of-forty-c-0123456789"
    with Session(res.store.engine) as s:
        s.add(Call(id=long_id, source_name="a very long source file name of forty characters.wav", status="done",
                   agent_id="agent-with-a-long-name", started_at=time.time()))
        s.commit()

    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(cli._calls_table(res.store.list_calls(), 80))
    text = console.export_text()
    assert "meld_call_recent-0001" in text and "meld_call_old-0002" in text and long_id in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_withdraw_marks_the_call_then_deletes(tmp_path):
    from callsense.store.blobs import WITHDRAWN_SUFFIX, BlobWithdrawn

    store = BlobStore(tmp_path, 0)
    ref = store.put(b"clear audio", keep=True)
    assert store.withdrawn_calls(ref.blob) is None and not store.withdrawn_for(ref.blob, "c1")
    assert store.withdraw(ref.blob, "c1") and not store.exists(ref.blob)
    assert not store.withdraw(ref.blob, "c1")  # again: nothing left to delete, the mark is not doubled
    store.withdraw(ref.blob, "c2")
    assert store.withdrawn_calls(ref.blob) == {"c1", "c2"}
    assert store._path(ref.blob).with_name(ref.blob + WITHDRAWN_SUFFIX).read_text() == "c1\nc2\n"
    assert store.withdrawn_for(ref.blob, "c1") and not store.withdrawn_for(ref.blob, "c3")
    with pytest.raises(BlobWithdrawn) as e:
        store.get(ref)
    assert e.value.calls == {"c1", "c2"} and isinstance(e.value, FileNotFoundError)
    # Put again (the same file submitted again): it is there, no longer "withdrawn for" anyone.
    store.put(b"clear audio", keep=True)
    assert store.get(ref) == b"clear audio" and not store.withdrawn_for(ref.blob, "c1")


def test_gc_removes_clear_audio_of_redacted_calls_and_old_withdrawal_marks(tmp_path):
    from callsense.store.blobs import WITHDRAWN_MAX_AGE_S, BlobUse

    store = BlobStore(tmp_path, 0)
    clear, shared, redacted = (store.put(k, keep=True).blob for k in (b"clear", b"shared", b"redacted"))
    gone = store.put(b"gone", keep=True).blob
    store.withdraw(gone, "c1")
    mark = store._path(gone).with_name(gone + ".withdrawn")
    now = time.time()
    os.utime(mark, (now - WITHDRAWN_MAX_AGE_S - 60,) * 2)
    uses = [BlobUse(redacted, "done", now), BlobUse(clear, "clear"), BlobUse(shared, "clear"), BlobUse(shared, "processing", now)]
    report = store.gc(uses, None, now=now)
    assert {(name, why) for name, _, why in report.removed} == {
        (clear, "clear audio of a redacted call"), (gone + ".withdrawn", "old withdrawal mark")}
    assert store.exists(shared) and store.exists(redacted)  # still another call's recording; the call's own
