"""Engine creation: SQLite (WAL) by default, PostgreSQL by URL, and the schema's
migrations (Alembic, `store/migrations/`), run once per start under a lock."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import MetaData, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel, create_engine

from callsense.store import schema  # noqa: F401  (registers the tables)
# Other table modules register here too, one import each.
from callsense.store import review  # noqa: F401
from callsense.store import dialog_tables  # noqa: F401
from callsense.store import registry_tables  # noqa: F401

log = logging.getLogger(__name__)

#: The migration scripts (an Alembic script directory, shipped as package data).
MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

#: The key of the PostgreSQL advisory lock the upgrade runs under ("callsens" in ASCII).
#: Every callsense process uses this one key, so concurrent starters serialise.
PG_MIGRATION_LOCK_KEY = 0x63616C6C73656E73

#: SQLite: the upgrade runs under an exclusive lock on this file beside the database.
SQLITE_LOCK_SUFFIX = ".migrate.lock"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine on `url` whose database has the current schema (`ensure_schema`)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    ensure_schema(engine)
    return engine


def target_metadata() -> MetaData:
    """Every table of the store (the models the migrations must match)."""
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None):
    """An Alembic config for the store's migrations: no alembic.ini needed. With a
    connection, the migrations run on it (``config.attributes["connection"]``).

    A developer adding a column writes the model, then a revision, e.g.::

        from alembic import command
        command.revision(alembic_config(), message="add calls.x", autogenerate=True)

    with ``CALLSENSE_DATABASE_URL`` naming a database at the previous head.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision in `store/migrations/versions/`."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated, empty or pre-migration)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest revision, once, whoever else starts at the same time.

    The upgrade runs under a lock (PostgreSQL: `pg_advisory_lock`; SQLite: an exclusive
    file lock beside the database), and Alembic reads the version again under it, so of
    several processes starting on an empty database one creates the schema and the others
    find it done. A store made by callsense before migrations (tables but no
    ``alembic_version``) is not recreated: revision 0001 only adds what it lacks (tables,
    indexes, the nullable columns that older versions added on start) and stamps it.
    """
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return  # the usual start: nothing to do, no lock taken
    with _migration_lock(engine) as conn:
        if current_revision(conn) == head:
            return  # another process migrated while we waited for the lock
        tables = set(inspect(conn).get_table_names())
        conn.rollback()
        if "alembic_version" not in tables and tables & set(target_metadata().tables):
            log.info("store made before migrations (%s): upgrading it in place and stamping it",
                     engine.url.render_as_string(hide_password=True))
        from alembic import command

        with conn.begin():
            command.upgrade(alembic_config(conn), "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection on which only this process migrates the database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
            conn.commit()  # a session-level lock: it outlives the transaction
            try:
                yield conn
            finally:
                try:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_MIGRATION_LOCK_KEY})
                    conn.commit()
                except Exception:
                    # Never hand a connection that may still hold the lock back to the
                    # pool: closing the server session releases it.
                    conn.invalidate()
                    raise
        return
    lock_path = _sqlite_lock_path(engine) if engine.dialect.name == "sqlite" else None
    with contextlib.ExitStack() as stack:
        if lock_path is not None:
            stack.enter_context(_file_lock(lock_path))
        yield stack.enter_context(engine.connect())


def _sqlite_lock_path(engine: Engine) -> Path | None:
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None  # in memory (one process) or a URI: no file to put a lock beside
    return Path(database + SQLITE_LOCK_SUFFIX)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock (SQLite serialises the DDL itself)
        yield
        return
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
