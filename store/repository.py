"""Reads and idempotent writes over the schema, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from callsense.ingest.events import CallOpened, CallSegmented, DeadLetter, EventModel, TranscribedUtterance
from callsense.store.schema import Call, DeadLetterRecord, Sentence, Utterance


def _insert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


@dataclass
class CallSummary:
    call: Call
    sentences: int = 0
    by_speaker: dict[str, dict[str, int]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {"negative": 0, "neutral": 0, "positive": 0}
        for per in self.by_speaker.values():
            for k, v in per.items():
                total[k] = total.get(k, 0) + v
        return total


class ResultStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._insert = _insert(engine)

    # ---- writes ------------------------------------------------------------------

    def apply(self, events: Sequence[EventModel]) -> None:
        """Write a batch of pipeline results in one transaction; safe to repeat."""
        now = time.time()
        touched: set[str] = set()
        with Session(self.engine) as s:
            for ev in events:
                if isinstance(ev, CallOpened):
                    self._upsert_call(s, ev)
                elif isinstance(ev, CallSegmented):
                    self._ensure_call(s, ev.call_id)
                    s.exec(update(Call).where(Call.id == ev.call_id).values(
                        utterances_expected=sum(ev.utterances_per_channel.values()), duration_s=ev.duration_s))
                elif isinstance(ev, TranscribedUtterance):
                    self._ensure_call(s, ev.call_id, agent_id=ev.agent_id)
                    self._write_utterance(s, ev, now)
                elif isinstance(ev, DeadLetter):
                    s.add(DeadLetterRecord(stage=ev.stage, call_id=ev.call_id, reason=ev.reason, detail=ev.detail[:2000], at=ev.at))
                    if ev.call_id and ev.stage in ("segment", "ingest"):
                        self._ensure_call(s, ev.call_id)
                        s.exec(update(Call).where(Call.id == ev.call_id).values(status="failed", error=ev.reason))
                else:
                    continue
                if getattr(ev, "call_id", None):
                    touched.add(ev.call_id)
            s.flush()
            self._mark_finished(s, touched, now)
            s.commit()

    def _upsert_call(self, s: Session, ev: CallOpened) -> None:
        values = dict(id=ev.call_id, source_name=ev.source_name, mode=ev.mode, channels=ev.channels,
                      speakers=",".join(ev.speakers), agent_id=ev.agent_id, started_at=ev.started_at)
        stmt = self._insert(Call).values(**values, status="processing")
        s.exec(stmt.on_conflict_do_update(index_elements=["id"], set_={k: v for k, v in values.items() if k != "id"}))

    def _ensure_call(self, s: Session, call_id: str, agent_id: str | None = None) -> None:
        stmt = self._insert(Call).values(id=call_id, agent_id=agent_id, status="processing", started_at=time.time())
        s.exec(stmt.on_conflict_do_nothing(index_elements=["id"]))

    def _write_utterance(self, s: Session, ev: TranscribedUtterance, now: float) -> None:
        u = dict(call_id=ev.call_id, channel=ev.channel, idx=ev.index, speaker=ev.speaker, start=ev.start,
                 end=ev.end, text=ev.text, asr_confidence=ev.confidence, asr_model=ev.asr_model, stored_at=now)
        stmt = self._insert(Utterance).values(**u)
        s.exec(stmt.on_conflict_do_update(index_elements=["call_id", "channel", "idx"], set_={k: u[k] for k in ("speaker", "start", "end", "text", "asr_confidence", "asr_model")}))
        started = s.exec(select(Call.started_at).where(Call.id == ev.call_id)).scalar_one_or_none() or 0.0
        rows = []
        for sent in ev.sentences:
            if sent.sentiment is None:
                continue
            rows.append(dict(
                call_id=ev.call_id, channel=ev.channel, utterance_idx=ev.index, idx=sent.index, speaker=ev.speaker,
                agent_id=ev.agent_id, call_started_at=started, start=sent.start, end=sent.end, text=sent.text,
                sentiment=sent.sentiment.label, confidence=sent.sentiment.confidence,
                sentiment_model=sent.sentiment.model, asr_model=ev.asr_model,
                ended_at=(ev.live_started_at + sent.end) if ev.live_started_at else None, stored_at=now,
            ))
        if rows:
            stmt = self._insert(Sentence).values(rows)
            s.exec(stmt.on_conflict_do_update(
                index_elements=["call_id", "channel", "utterance_idx", "idx"],
                set_={k: getattr(stmt.excluded, k) for k in ("text", "start", "end", "sentiment", "confidence", "sentiment_model", "asr_model")},
            ))
        # A re-transcription that found fewer sentences must not leave stale ones behind.
        s.exec(delete(Sentence).where(Sentence.call_id == ev.call_id, Sentence.channel == ev.channel,
                                      Sentence.utterance_idx == ev.index, Sentence.idx >= len(ev.sentences)))

    def _mark_finished(self, s: Session, call_ids: Iterable[str], now: float) -> None:
        for cid in call_ids:
            call = s.get(Call, cid)
            if call is None or call.utterances_expected is None or call.status == "failed":
                continue
            stored = s.exec(select(func.count()).select_from(Utterance).where(Utterance.call_id == cid)).scalar_one()
            if stored >= call.utterances_expected and call.status != "done":
                call.status, call.finished_at = "done", now
                s.add(call)

    # ---- reads -------------------------------------------------------------------

    def get_call(self, call_id: str) -> Call | None:
        with Session(self.engine) as s:
            return s.get(Call, call_id)

    def list_calls(self, limit: int = 50, agent_id: str | None = None) -> list[Call]:
        with Session(self.engine) as s:
            q = select(Call).order_by(Call.started_at.desc()).limit(limit)
            if agent_id:
                q = q.where(Call.agent_id == agent_id)
            return list(s.exec(q).scalars())

    def sentences(self, call_id: str) -> list[Sentence]:
        with Session(self.engine) as s:
            q = select(Sentence).where(Sentence.call_id == call_id).order_by(Sentence.start, Sentence.channel)
            return list(s.exec(q).scalars())

    def utterances(self, call_id: str) -> list[Utterance]:
        with Session(self.engine) as s:
            q = select(Utterance).where(Utterance.call_id == call_id).order_by(Utterance.start, Utterance.channel)
            return list(s.exec(q).scalars())

    def summary(self, call_id: str) -> CallSummary | None:
        with Session(self.engine) as s:
            call = s.get(Call, call_id)
            if call is None:
                return None
            rows = s.exec(select(Sentence.speaker, Sentence.sentiment, func.count())
                          .where(Sentence.call_id == call_id).group_by(Sentence.speaker, Sentence.sentiment)).all()
        out = CallSummary(call)
        for speaker, label, n in rows:
            out.by_speaker.setdefault(speaker, {})[label] = n
            out.sentences += n
        return out

    def dead_letters(self, limit: int = 50) -> list[DeadLetterRecord]:
        with Session(self.engine) as s:
            return list(s.exec(select(DeadLetterRecord).order_by(DeadLetterRecord.at.desc()).limit(limit)).scalars())
