"""Idempotent writes and reads on both real databases."""

import uuid

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from callsense.ingest.results import result_rows
from callsense.core.events import (
    CallOpened, CallSegmented, DeadLetter, ScoredUtterance, Sentence, SentenceSentiment,
)
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore
from callsense.store.schema import Sentence as SentenceRow, Utterance


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'cs.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    return ResultStore(make_engine(url))


def scored(call_id, channel, index, texts, labels):
    sentences = [Sentence(index=i, text=t, start=index * 10 + i, end=index * 10 + i + 0.9,
                          sentiment=SentenceSentiment(label=l, confidence=0.8, model="m"))
                 for i, (t, l) in enumerate(zip(texts, labels))]
    return ScoredUtterance(call_id=call_id, channel=channel, speaker=["agent", "customer"][channel], agent_id="ag7",
                           index=index, start=index * 10, end=index * 10 + 5, text=" ".join(texts), asr_model="asr",
                           sentences=sentences, sentiment_model="m")


def count(store, table, call_id):
    with Session(store.engine) as s:
        return s.exec(select(func.count()).select_from(table).where(table.call_id == call_id)).scalar_one()


def test_redelivery_never_duplicates_and_call_completes(store):
    cid = f"c-{uuid.uuid4().hex[:8]}"
    events = [
        CallOpened(call_id=cid, source_name="x.mp3", mode="recorded", channels=2, speakers=["agent", "customer"],
                   agent_id="ag7", started_at=1000.0),
        scored(cid, 0, 0, ["Hello.", "How can I help?"], ["neutral", "positive"]),
        scored(cid, 1, 0, ["I was charged twice."], ["negative"]),
        CallSegmented(call_id=cid, utterances_per_channel={0: 1, 1: 1}, duration_s=20.0),
    ]
    store.apply(result_rows(events))
    store.apply(result_rows(events[1:3]))  # at-least-once delivery repeats messages
    store.apply(result_rows(list(reversed(events))))
    assert count(store, Utterance, cid) == 2
    assert count(store, SentenceRow, cid) == 3
    summary = store.summary(cid)
    assert summary.call.status == "done" and summary.call.duration_s == 20.0
    assert summary.by_speaker == {"agent": {"neutral": 1, "positive": 1}, "customer": {"negative": 1}}
    assert [s.text for s in store.sentences(cid)] == ["Hello.", "I was charged twice.", "How can I help?"]


def test_call_is_processing_until_every_utterance_is_stored(store):
    cid = f"c-{uuid.uuid4().hex[:8]}"
    store.apply(result_rows([CallSegmented(call_id=cid, utterances_per_channel={0: 2}, duration_s=9.0),
                 scored(cid, 0, 1, ["Second."], ["neutral"])]))
    assert store.get_call(cid).status == "processing"
    store.apply(result_rows([scored(cid, 0, 0, ["First."], ["neutral"])]))
    assert store.get_call(cid).status == "done"


def test_retranscription_with_fewer_sentences_leaves_no_stale_rows(store):
    cid = f"c-{uuid.uuid4().hex[:8]}"
    store.apply(result_rows([scored(cid, 0, 0, ["One.", "Two.", "Three."], ["neutral"] * 3)]))
    store.apply(result_rows([scored(cid, 0, 0, ["One two three."], ["positive"])]))
    rows = store.sentences(cid)
    assert [(r.text, r.sentiment) for r in rows] == [("One two three.", "positive")]


def test_dead_letter_marks_call_failed(store):
    cid = f"c-{uuid.uuid4().hex[:8]}"
    store.apply(result_rows([DeadLetter(stage="segment", call_id=cid, reason="not an audio file")]))
    assert store.get_call(cid).status == "failed"
    assert any(d.call_id == cid and d.reason == "not an audio file" for d in store.dead_letters())


def test_sqlite_store_uses_wal(tmp_path):
    store = ResultStore(make_engine(f"sqlite:///{tmp_path / 'w.db'}"))
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_an_older_store_gets_new_nullable_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    make_engine(f"sqlite:///{path}")
    con = sqlite3.connect(path)
    # A store from before migrations: no alembic_version, and calls without audio_blob.
    con.execute("ALTER TABLE calls DROP COLUMN audio_blob")
    con.execute("DROP TABLE alembic_version")
    con.commit()
    con.close()
    store = ResultStore(make_engine(f"sqlite:///{path}"))
    store.apply(result_rows([CallOpened(call_id="old-1", source_name="x", mode="recorded", channels=1, speakers=["agent"],
                            started_at=1.0, audio_blob="ab" * 32)]))
    assert store.get_call("old-1").audio_blob == "ab" * 32
