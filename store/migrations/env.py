"""Alembic environment of the callsense store.

`callsense.store.db.ensure_schema` runs it programmatically and hands over an open
connection in ``config.attributes["connection"]`` (it already holds the migration lock).
Without one (a developer's ``alembic`` command, e.g. ``revision --autogenerate``) it
connects to ``sqlalchemy.url`` from the config, else ``CALLSENSE_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from callsense.store.db import target_metadata

config = context.config


def _render_item(type_, obj, _autogen_context):
    """Autogenerate writes SQLModel's string type as plain ``sa.String`` (revisions import
    only sqlalchemy and alembic)."""
    from sqlmodel.sql.sqltypes import AutoString

    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        compare_type=True,
        render_item=_render_item,
        # SQLite cannot ALTER most things: later revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("CALLSENSE_DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set sqlalchemy.url or CALLSENSE_DATABASE_URL")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported: run them against a database")
run_migrations_online()
