"""The store stage: results and dead letters into the database, in one transaction per batch."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy.exc import OperationalError

from callsense.core.errors import TransientError
from callsense.core.events import EventModel
from callsense.ingest.results import result_rows
from callsense.store.repository import ResultStore


class ResultWriter:
    name = "store"
    inputs = ("results", "dead-letters")

    def __init__(self, store: ResultStore):
        self.store = store

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        try:
            self.store.apply(result_rows(events))
        except OperationalError as e:
            raise TransientError(f"database unavailable: {e.orig}") from e
        return []
