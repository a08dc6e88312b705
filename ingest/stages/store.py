"""The store stage: results and dead letters into the database, in one transaction per batch;
then the category rules over the calls the batch touched (`ingest/categories.py`), and the PII
in the recordings of the calls that are done (`ingest/recording_redaction.py`)."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy.exc import OperationalError

from callsense.core.errors import TransientError
from callsense.core.events import EventModel
from callsense.ingest.categories import CategoryEvaluator
from callsense.ingest.recording_redaction import RecordingRedactor
from callsense.ingest.results import result_rows
from callsense.nlp.categories import RuleSet
from callsense.store.repository import ResultStore


class ResultWriter:
    name = "store"
    inputs = ("results", "dead-letters")

    def __init__(self, store: ResultStore, rules: RuleSet | None = None, recordings: RecordingRedactor | None = None):
        self.store = store
        self.categories = CategoryEvaluator(rules, store) if rules is not None else None
        self.recordings = recordings

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        batch = result_rows(events)
        out: list[EventModel] = []
        try:
            if self.recordings is not None:
                batch = self.recordings.before_batch(batch)
            self.store.apply(batch)
            # Calls with new sentences, and calls that may just have become done.
            touched = {u.call_id for u in batch.utterances} | {s.call_id for s in batch.segmented}
            if self.categories is not None:
                self.categories.after_batch(touched)
            if self.recordings is not None:
                out.extend(self.recordings.after_batch(touched | {o.call_id for o in batch.opened}))
        except OperationalError as e:
            raise TransientError(f"database unavailable: {e.orig}") from e
        return out
