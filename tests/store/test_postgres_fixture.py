"""The ``postgres_url`` fixture gives a real, writable PostgreSQL database."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.postgres


def test_postgres_fixture_select_and_write(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            assert conn.execute(text("select current_database()")).scalar_one() == "callsense_test"
            assert conn.execute(text("show server_version_num")).scalar_one() >= "150000"
        with engine.begin() as conn:
            conn.execute(
                text("create table fixture_probe (id serial primary key, label text not null)")
            )
            conn.execute(
                text("insert into fixture_probe (label) values (:a), (:b)"),
                {"a": "hello", "b": "wörld"},
            )
        with engine.connect() as conn:
            rows = conn.execute(text("select id, label from fixture_probe order by id")).all()
            assert [tuple(r) for r in rows] == [(1, "hello"), (2, "wörld")]
        with engine.begin() as conn:
            conn.execute(text("drop table fixture_probe"))
    finally:
        engine.dispose()
