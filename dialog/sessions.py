"""Per-session conversation state in the store, and the turn archive.

A session row holds the input state the conversation waits in and its context (JSON);
every turn appends one archive row. Both are written in one transaction, so a crash never
leaves a turn archived without its session moving on (or the reverse).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.engine import Engine

from callsense.store.dialog_tables import DialogSession, DialogTurn


def _upsert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return None
    return dialect_insert


@dataclass
class SessionState:
    session_id: str
    state: str
    context: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    flows: str = ""
    created_at: float = 0.0
    is_new: bool = True


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


class SessionStore:
    """Statements are built once and executed with parameters, so SQLAlchemy's compiled
    cache is hit on every turn (a turn costs two indexed statements and one commit)."""

    def __init__(self, db: Engine):
        self.db = db
        sessions, turns = DialogSession.__table__, DialogTurn.__table__
        self._load = (select(sessions.c.state, sessions.c.context_json, sessions.c.turns, sessions.c.flows,
                             sessions.c.created_at).where(sessions.c.id == bindparam("sid")))
        self._insert_turn = turns.insert()
        self._update_cols = ("flows", "state", "context_json", "turns", "updated_at")
        dialect_insert = _upsert(db)
        if dialect_insert is not None:
            stmt = dialect_insert(sessions)
            self._upsert = stmt.on_conflict_do_update(index_elements=["id"],
                                                      set_={c: stmt.excluded[c] for c in self._update_cols})
        else:
            self._upsert = None
        self._insert_session = sessions.insert()
        self._update_session = sessions.update().where(sessions.c.id == bindparam("sid"))
        self._delete = delete(sessions).where(sessions.c.id == bindparam("sid"))

    def load(self, session_id: str) -> SessionState | None:
        with self.db.connect() as conn:
            row = conn.execute(self._load, {"sid": session_id}).first()
        if row is None:
            return None
        try:
            context = json.loads(row.context_json or "{}")
        except ValueError:
            context = {}
        if not isinstance(context, dict):
            context = {}
        return SessionState(session_id, row.state, context, row.turns, row.flows, row.created_at, is_new=False)

    def save(self, session: SessionState, turn: dict[str, Any] | None = None) -> None:
        now = time.time()
        values = dict(flows=session.flows, state=session.state,
                      context_json=json.dumps(_json_safe(session.context), ensure_ascii=False),
                      turns=session.turns, updated_at=now)
        with self.db.begin() as conn:
            if self._upsert is not None:
                conn.execute(self._upsert, {"id": session.session_id, "created_at": session.created_at or now,
                                            **values})
            elif session.is_new:
                conn.execute(self._insert_session, {"id": session.session_id,
                                                    "created_at": session.created_at or now, **values})
            else:
                conn.execute(self._update_session, {"sid": session.session_id, **values})
            if turn is not None:
                conn.execute(self._insert_turn, turn)
        session.is_new = False

    def delete(self, session_id: str) -> bool:
        with self.db.begin() as conn:
            return conn.execute(self._delete, {"sid": session_id}).rowcount > 0
