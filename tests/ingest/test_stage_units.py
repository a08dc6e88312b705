"""A Kafka stage consumer runs a poll's events in the stage's units of work and hands each
unit's outputs to the producer as soon as the unit is done (the first live utterance of a
poll does not wait for the recognition of the others), flushes once before the commit, and
retries only the unit that met a transient failure (no broker needed: the publisher is a fake)."""

from __future__ import annotations

import logging
import threading

from callsense.core.errors import TransientError
from callsense.core.events import InterimTranscript
from callsense.core.settings import Settings
from callsense.ingest.stage import stage_units
from callsense.ingest.transports.kafka import StageConsumer
from callsense.ingest.transports.outage import Outage


def ev(i: int) -> InterimTranscript:
    return InterimTranscript(call_id=f"c{i}", channel=0, index=0, text=f"in {i}", start=0.0, end=1.0, seq=i)


class Journal:
    def __init__(self):
        self.log: list[tuple] = []


class FakePublisher:
    def __init__(self, journal: Journal):
        self.journal = journal
        self.outage = None

    def publish(self, events):
        self.journal.log.append(("publish", [e.seq for e in events]))

    def flush(self):
        self.journal.log.append(("flush",))


class OneByOne:
    name = "fake"
    inputs = ("calls",)

    def __init__(self, journal: Journal, fail_once: set[int] = frozenset()):
        self.journal, self.fail_once = journal, set(fail_once)

    def units(self, events):
        return [[e] for e in events]

    def handle_batch(self, events):
        seqs = [e.seq for e in events]
        self.journal.log.append(("handle", seqs))
        if self.fail_once & set(seqs):
            self.fail_once -= set(seqs)
            raise TransientError("dependency away")
        return [e.model_copy(update={"seq": e.seq + 100}) for e in events]


def consumer(stage, journal):
    stop = threading.Event()
    c = StageConsumer(Settings(), stage, FakePublisher(journal), stop)
    c.dependency = Outage("fake dependency", float("inf"), logging.getLogger("test"), first_wait_s=0.0, stop=stop)
    return c


def test_each_units_outputs_are_handed_on_before_the_next_unit_runs_then_one_flush():
    journal = Journal()
    c = consumer(OneByOne(journal), journal)
    assert c._process([("tp", k, ev(k)) for k in (1, 2, 3)])
    assert journal.log == [("handle", [1]), ("publish", [101]), ("handle", [2]), ("publish", [102]),
                           ("handle", [3]), ("publish", [103]), ("flush",)]


def test_a_transient_failure_retries_only_its_own_unit():
    journal = Journal()
    c = consumer(OneByOne(journal, fail_once={2}), journal)
    assert c._process([("tp", k, ev(k)) for k in (1, 2, 3)])
    assert [e for e in journal.log if e[0] == "handle"] == [("handle", [1]), ("handle", [2]), ("handle", [2]), ("handle", [3])]
    assert [e[1] for e in journal.log if e[0] == "publish"] == [[101], [102], [103]]


def test_stages_without_units_get_the_whole_batch():
    class Whole:
        name, inputs = "whole", ("calls",)

        def handle_batch(self, events):
            return []

    events = [ev(1), ev(2)]
    assert stage_units(Whole(), events) == [events]
