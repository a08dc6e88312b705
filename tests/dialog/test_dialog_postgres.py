"""The assistant on PostgreSQL: sessions (upsert), the turn archive and the catalog work
the same as on the SQLite default."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from callsense.store.dialog_tables import DialogSession, DialogTurn

pytestmark = pytest.mark.postgres


def test_conversation_on_postgres(postgres_url, dialog_settings, keywords_nlu, tmp_path):
    from callsense.dialog.archive import export_nemo
    from callsense.dialog.assistant import Assistant
    from callsense.store.db import make_engine

    db = make_engine(postgres_url)
    try:
        a = Assistant(dialog_settings, nlu=keywords_nlu, db=db, seed=1, today=lambda: date(2025, 6, 2))
        assert a.reply("pg", "how much is laptop memory").text.endswith("For which location?")
        reply = a.reply("pg", "Seattle")
        assert "The lowest price for laptop memory in Seattle is $40.99" in reply.text
        reply = a.reply("pg", "nearest sushi place")
        assert reply.text.startswith("The nearest sushi restaurant in Seattle is Umi Sushi")
        # a second assistant (another process, in production) resumes the same session
        b = Assistant(dialog_settings, nlu=keywords_nlu, db=db, seed=1, today=lambda: date(2025, 6, 2))
        assert b.reply("pg", "will it rain tomorrow?").text.startswith("Yes, rain is likely in Seattle tomorrow")
        with db.connect() as conn:
            assert conn.execute(select(DialogSession.turns).where(DialogSession.id == "pg")).scalar_one() == 4
            assert conn.execute(select(func.count()).select_from(DialogTurn)).scalar_one() == 4
        assert export_nemo(db, tmp_path / "nemo", include_unreviewed=True).train == 4
    finally:
        db.dispose()
