"""Schema migrations (issue 11 §2): the store's schema comes from Alembic revisions, run
once per start under a lock, so processes starting together on an empty database all
succeed; a store made before migrations is upgraded in place and stamped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from callsense.store.db import alembic_config, current_revision, head_revision, make_engine, target_metadata


def _fresh_postgres_database(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the session's server (dropped afterwards)."""
    name = f"cs_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cs.db'}"
    else:
        yield from _fresh_postgres_database(request.getfixturevalue("postgres_url"))


def _differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, target_metadata())
    finally:
        engine.dispose()


def _version(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    finally:
        engine.dispose()


def test_one_head_and_a_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()]
    revisions = list(script.walk_revisions())
    assert revisions[-1].revision == "0001" and revisions[-1].down_revision is None
    assert all(not r.is_merge_point for r in revisions)


def test_migrations_build_exactly_the_models_schema(empty_db: str) -> None:
    """Fails when a model changes without a migration (write one: docs/architecture.md)."""
    engine = make_engine(empty_db)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(target_metadata().tables) | {"alembic_version"}
    assert _differences(empty_db) == []
    assert _version(empty_db) == [head_revision()]


def test_a_second_start_changes_nothing(empty_db: str) -> None:
    make_engine(empty_db).dispose()
    engine = make_engine(empty_db)
    engine.dispose()
    assert _version(empty_db) == [head_revision()]


STARTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    from callsense.store.db import make_engine   # imports done before the barrier
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)
    make_engine(url).dispose()
    print("started")
    """
)


@pytest.mark.timeout(180)
def test_processes_starting_together_on_an_empty_database_all_succeed(empty_db: str, tmp_path: Path) -> None:
    """docker-compose's first start: several workers create the schema at the same moment."""
    n = 3
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(n)]
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, empty_db, str(r), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ready]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "the starters did not get ready"
            time.sleep(0.02)
        go.touch()  # all of them leave the barrier at once
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and "started" in out, err
    assert _version(empty_db) == [head_revision()]
    assert _differences(empty_db) == []


def _old_store_sql(dialect: str) -> list[str]:
    """The first store's tables, as an early callsense made them (before the nullable
    columns `audio_blob`, `utterances_expected`, `ended_at`, ... and before the
    dashboard, dialog and registry tables and indexes existed)."""
    serial = "SERIAL" if dialect == "postgresql" else "INTEGER"
    return [
        """CREATE TABLE agents (id VARCHAR NOT NULL, name VARCHAR, PRIMARY KEY (id))""",
        """CREATE TABLE calls (
            id VARCHAR NOT NULL, source_name VARCHAR NOT NULL, mode VARCHAR NOT NULL,
            status VARCHAR NOT NULL, agent_id VARCHAR, channels INTEGER NOT NULL,
            speakers VARCHAR NOT NULL, started_at FLOAT NOT NULL, duration_s FLOAT,
            PRIMARY KEY (id))""",
        "CREATE INDEX ix_calls_agent_id ON calls (agent_id)",
        "CREATE INDEX ix_calls_started_at ON calls (started_at)",
        f"""CREATE TABLE utterances (
            id {serial} NOT NULL, call_id VARCHAR NOT NULL, channel INTEGER NOT NULL,
            idx INTEGER NOT NULL, speaker VARCHAR NOT NULL, start FLOAT NOT NULL,
            "end" FLOAT NOT NULL, text VARCHAR NOT NULL, asr_model VARCHAR NOT NULL,
            stored_at FLOAT NOT NULL, PRIMARY KEY (id),
            CONSTRAINT uq_utterance UNIQUE (call_id, channel, idx))""",
        "CREATE INDEX ix_utterances_call_id ON utterances (call_id)",
        f"""CREATE TABLE sentences (
            id {serial} NOT NULL, call_id VARCHAR NOT NULL, channel INTEGER NOT NULL,
            utterance_idx INTEGER NOT NULL, idx INTEGER NOT NULL, speaker VARCHAR NOT NULL,
            agent_id VARCHAR, call_started_at FLOAT NOT NULL, start FLOAT NOT NULL,
            "end" FLOAT NOT NULL, text VARCHAR NOT NULL, sentiment VARCHAR NOT NULL,
            confidence FLOAT NOT NULL, sentiment_model VARCHAR NOT NULL, asr_model VARCHAR NOT NULL,
            stored_at FLOAT NOT NULL, PRIMARY KEY (id),
            CONSTRAINT uq_sentence UNIQUE (call_id, channel, utterance_idx, idx))""",
        "CREATE INDEX ix_sentences_call_id ON sentences (call_id)",
        f"""CREATE TABLE dead_letters (
            id {serial} NOT NULL, stage VARCHAR NOT NULL, call_id VARCHAR, reason VARCHAR NOT NULL,
            detail VARCHAR NOT NULL, at FLOAT NOT NULL, PRIMARY KEY (id))""",
        "CREATE INDEX ix_dead_letters_call_id ON dead_letters (call_id)",
        """INSERT INTO calls (id, source_name, mode, status, agent_id, channels, speakers, started_at, duration_s)
           VALUES ('old-call', 'x.mp3', 'recorded', 'done', 'a-1', 1, 'agent', 1.0, 9.5)""",
        """INSERT INTO sentences (call_id, channel, utterance_idx, idx, speaker, agent_id, call_started_at,
           start, "end", text, sentiment, confidence, sentiment_model, asr_model, stored_at)
           VALUES ('old-call', 0, 0, 0, 'agent', 'a-1', 1.0, 0.0, 1.0, 'Hello.', 'neutral', 0.9, 'm', 'a', 2.0)""",
    ]


def test_a_store_made_before_migrations_is_upgraded_in_place_and_stamped(empty_db: str) -> None:
    old = create_engine(empty_db)
    try:
        with old.begin() as conn:
            for statement in _old_store_sql(old.dialect.name):
                conn.execute(text(statement))
    finally:
        old.dispose()

    engine = make_engine(empty_db)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            calls = {c["name"] for c in inspect(conn).get_columns("calls")}
            assert {"audio_blob", "utterances_expected", "finished_at", "error"} <= calls
            assert "ended_at" in {c["name"] for c in inspect(conn).get_columns("sentences")}
            # Kept, not recreated: the old rows are there.
            assert conn.execute(text("SELECT duration_s FROM calls WHERE id = 'old-call'")).scalar_one() == 9.5
            assert conn.execute(text("SELECT count(*) FROM sentences")).scalar_one() == 1
    finally:
        engine.dispose()
    assert _differences(empty_db) == []
    assert _version(empty_db) == [head_revision()]

    # And the repository reads it through today's models.
    from callsense.store.repository import ResultStore

    store = ResultStore(make_engine(empty_db))
    try:
        call = store.get_call("old-call")
        assert call.duration_s == 9.5 and call.audio_blob is None
    finally:
        store.engine.dispose()


def test_an_sqlite_store_from_an_older_release_is_stamped_not_recreated(tmp_path: Path) -> None:
    """The whole pre-migration schema (create_all of today's models) is recognised as
    revision 0001: nothing is created, only the version is written."""
    from sqlmodel import SQLModel

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    SQLModel.metadata.create_all(old)
    with old.begin() as conn:
        conn.execute(text("INSERT INTO agents (id, name) VALUES ('a-1', 'Ann')"))
    old.dispose()

    make_engine(url).dispose()
    assert _version(url) == [head_revision()]
    assert _differences(url) == []
    check = create_engine(url)
    with check.connect() as conn:
        assert conn.execute(text("SELECT name FROM agents")).scalar_one() == "Ann"
    check.dispose()
