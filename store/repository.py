"""Reads and idempotent writes over the schema, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import bindparam, case, delete, exists, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from callsense.store.review import CallAudio
from callsense.store.rows import (
    CallForRules, CallOpening, CategoryRow, ClearBlobRow, RecordingToRedact, ResultBatch, UtteranceRow,
)
from callsense.store.schema import Call, CallCategory, ClearAudioBlob, DeadLetterRecord, Sentence, Utterance


# Reasons and details come from exceptions and messages: bounded before they are stored.
MAX_REASON_CHARS = 1000
MAX_DETAIL_CHARS = 2000


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

    def apply(self, batch: ResultBatch) -> None:
        """Write a batch of pipeline results in one transaction; safe to repeat.
        Rows of one kind go in one multi-row statement: per-row round trips made this
        the pipeline's slowest stage."""
        now = time.time()
        opened, segmented, utts, dead = batch.opened, batch.segmented, batch.utterances, batch.failures
        failed = {d.call_id: d.reason[:MAX_REASON_CHARS] for d in dead if d.call_id and d.fatal}
        touched = {e.call_id for e in (*opened, *segmented, *utts)} | set(failed)
        if not touched and not dead:
            return
        with Session(self.engine) as s:
            for row in opened:
                self._upsert_call(s, row)
            agents = {u.call_id: u.agent_id for u in utts}
            if touched:
                s.exec(self._insert(Call).values(
                    [dict(id=c, agent_id=agents.get(c), status="processing", started_at=now) for c in sorted(touched)]
                ).on_conflict_do_nothing(index_elements=["id"]))
            for seg in segmented:
                s.exec(update(Call).where(Call.id == seg.call_id).values(
                    utterances_expected=seg.utterances_expected, duration_s=seg.duration_s))
            if utts:
                self._write_utterances(s, utts, now)
            clear = [*batch.clear_blobs, *((u.call_id, u.window_blob, "window") for u in utts if u.pii_spans and u.window_blob)]
            if clear:
                self._add_clear_blobs(s, clear, now)
            for d in dead:
                s.add(DeadLetterRecord(stage=d.stage, call_id=d.call_id, reason=d.reason[:MAX_REASON_CHARS],
                                       detail=d.detail[:MAX_DETAIL_CHARS], at=d.at))
            for call_id, reason in failed.items():
                s.exec(update(Call).where(Call.id == call_id).values(status="failed", error=reason))
            s.flush()
            self._mark_finished(s, touched, now)
            s.commit()

    def _upsert_call(self, s: Session, row: CallOpening) -> None:
        values = dict(id=row.call_id, source_name=row.source_name, mode=row.mode, channels=row.channels,
                      speakers=",".join(row.speakers), agent_id=row.agent_id, started_at=row.started_at,
                      audio_blob=row.audio_blob)
        stmt = self._insert(Call).values(**values, status="processing")
        set_ = {k: v for k, v in values.items() if k != "id"}
        # An event that names no recording (the store stage blanks the original of a redacted
        # recording, redelivered or submitted again) keeps the recording the call names; a new
        # recording is not redacted yet.
        set_["audio_blob"] = func.coalesce(stmt.excluded.audio_blob, Call.audio_blob)
        set_["audio_redaction"] = case(
            (or_(stmt.excluded.audio_blob.is_(None), stmt.excluded.audio_blob == Call.audio_blob), Call.audio_redaction),
            else_=None)
        s.exec(stmt.on_conflict_do_update(index_elements=["id"], set_=set_))

    def _upsert_many(self, s: Session, table, rows: list[dict], keys: list[str], update_cols: Sequence[str]) -> None:
        """executemany of one compiled statement (cached), not a giant VALUES list to compile."""
        if not rows:
            return
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={k: getattr(stmt.excluded, k) for k in update_cols})
        s.connection().execute(stmt, rows)

    def _write_utterances(self, s: Session, utts: Sequence[UtteranceRow], now: float) -> None:
        self._upsert_many(s, Utterance, [
            dict(call_id=u.call_id, channel=u.channel, idx=u.index, speaker=u.speaker, start=u.start, end=u.end,
                 text=u.text, asr_confidence=u.confidence, asr_model=u.asr_model, stored_at=now,
                 pii_spans=json.dumps([list(p) for p in u.pii_spans]) if u.pii_spans else None) for u in utts],
            ["call_id", "channel", "idx"], ("speaker", "start", "end", "text", "asr_confidence", "asr_model", "pii_spans"))
        call_ids = sorted({u.call_id for u in utts})
        started = dict(s.exec(select(Call.id, Call.started_at).where(Call.id.in_(call_ids))).all())
        rows = [
            dict(call_id=u.call_id, channel=u.channel, utterance_idx=u.index, idx=sent.index, speaker=u.speaker,
                 agent_id=u.agent_id, call_started_at=started.get(u.call_id) or 0.0, start=sent.start, end=sent.end,
                 text=sent.text, sentiment=sent.sentiment, confidence=sent.confidence,
                 sentiment_model=sent.model, asr_model=u.asr_model,
                 ended_at=(u.live_started_at + sent.end) if u.live_started_at else None, stored_at=now,
                 loudness_dbfs=sent.loudness_dbfs)
            for u in utts for sent in u.sentences if sent.sentiment is not None
        ]
        self._upsert_many(s, Sentence, rows, ["call_id", "channel", "utterance_idx", "idx"],
                          ("text", "start", "end", "sentiment", "confidence", "sentiment_model", "asr_model", "stored_at",
                           "loudness_dbfs"))
        # A re-transcription that found fewer sentences must not leave stale ones behind.
        stale = delete(Sentence).where(
            Sentence.call_id == bindparam("c"), Sentence.channel == bindparam("ch"),
            Sentence.utterance_idx == bindparam("u"), Sentence.idx >= bindparam("n"))
        s.connection().execute(stale, [dict(c=u.call_id, ch=u.channel, u=u.index, n=len(u.sentences)) for u in utts])

    def _mark_finished(self, s: Session, call_ids: Iterable[str], now: float) -> None:
        ids = sorted(call_ids)
        if not ids:
            return
        stored = dict(s.exec(select(Utterance.call_id, func.count()).where(Utterance.call_id.in_(ids))
                             .group_by(Utterance.call_id)).all())
        for call in s.exec(select(Call).where(Call.id.in_(ids), Call.status == "processing",
                                              Call.utterances_expected.is_not(None))).scalars():
            if stored.get(call.id, 0) >= call.utterances_expected:
                call.status, call.finished_at = "done", now
                s.add(call)

    # ---- PII in recordings ----------------------------------------------------------

    def _add_clear_blobs(self, s: Session, rows: Iterable[tuple[str, str, str]], now: float) -> None:
        values = [dict(call_id=c, blob=b, role=r, added_at=now) for c, b, r in dict.fromkeys(rows)]
        s.connection().execute(self._insert(ClearAudioBlob).on_conflict_do_nothing(index_elements=["call_id", "blob"]),
                               values)

    def recordings_to_redact(self, call_ids: Sequence[str] | None = None, *, since: float | None = None
                             ) -> list[RecordingToRedact]:
        """Done calls (of `call_ids`, or all started since `since`) whose recording has not been
        through the redaction yet although their transcript had PII redacted, with the spans."""
        has_pii = exists().where(Utterance.call_id == Call.id, Utterance.pii_spans.is_not(None))
        q = select(Call.id, Call.audio_blob, Call.started_at).where(
            Call.status == "done", Call.audio_blob.is_not(None), Call.audio_redaction.is_(None), has_pii)
        if call_ids is not None:
            if not call_ids:
                return []
            q = q.where(Call.id.in_(sorted(set(call_ids))))
        if since is not None:
            q = q.where(Call.started_at >= since)
        with self.engine.connect() as conn:
            calls = conn.execute(q).all()
            if not calls:
                return []
            spans: dict[str, list[tuple[float, float]]] = {c.id: [] for c in calls}
            for call_id, text in conn.execute(select(Utterance.call_id, Utterance.pii_spans).where(
                    Utterance.call_id.in_(list(spans)), Utterance.pii_spans.is_not(None))):
                spans[call_id].extend((float(a), float(b)) for _, a, b in json.loads(text))
        return [RecordingToRedact(c.id, c.audio_blob, c.started_at or 0.0, tuple(sorted(spans[c.id]))) for c in calls]

    def replace_recording(self, call_id: str, old_blob: str, new_blob: str | None, state: str,
                          now: float | None = None) -> bool:
        """The call names `new_blob` (None: no recording) instead of `old_blob`, which joins the
        clear audio to withdraw (unless it is the same), in one transaction; only while the call
        still names `old_blob` unredacted. Returns whether it did."""
        now = now or time.time()
        with Session(self.engine) as s:
            done = s.exec(update(Call).where(Call.id == call_id, Call.audio_blob == old_blob,
                                             Call.audio_redaction.is_(None))
                          .values(audio_blob=new_blob, audio_redaction=state)).rowcount
            if done and new_blob != old_blob:
                self._add_clear_blobs(s, [(call_id, old_blob, "recording")], now)
            s.commit()
        return bool(done)

    def clear_blobs_due(self, call_ids: Sequence[str] | None = None) -> list[ClearBlobRow]:
        """Clear audio of done calls (of `call_ids`, or all) still to withdraw."""
        q = (select(ClearAudioBlob.call_id, ClearAudioBlob.blob, ClearAudioBlob.role, ClearAudioBlob.added_at)
             .join(Call, Call.id == ClearAudioBlob.call_id).where(Call.status == "done"))
        if call_ids is not None:
            if not call_ids:
                return []
            q = q.where(ClearAudioBlob.call_id.in_(sorted(set(call_ids))))
        with self.engine.connect() as conn:
            return [ClearBlobRow(*r) for r in conn.execute(q.order_by(ClearAudioBlob.id))]

    def blob_in_use(self, blob: str) -> bool:
        """A call names the blob as its recording (or a recording attached to a call is it)."""
        with self.engine.connect() as conn:
            return bool(conn.execute(select(or_(exists().where(Call.audio_blob == blob),
                                                exists().where(CallAudio.blob == blob)))).scalar())

    def forget_clear_blob(self, call_id: str, blob: str) -> None:
        with Session(self.engine) as s:
            s.exec(delete(ClearAudioBlob).where(ClearAudioBlob.call_id == call_id, ClearAudioBlob.blob == blob))
            s.commit()

    def clear_blob_names(self) -> list[str]:
        """Every blob still listed as the audio in clear of a done call (`callsense blobs gc`)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(ClearAudioBlob.blob).distinct().join(Call, Call.id == ClearAudioBlob.call_id)
                                     .where(Call.status == "done")).scalars())

    # ---- categories ----------------------------------------------------------------

    def calls_for_rules(self, call_ids: Sequence[str]) -> list[CallForRules]:
        """The calls and their sentences (time order) the category rules read; one query each."""
        ids = sorted(set(call_ids))
        if not ids:
            return []
        with self.engine.connect() as conn:
            return self._calls_for_rules(conn, ids)

    @staticmethod
    def _calls_for_rules(conn, ids: Sequence[str], contiguous: bool = False) -> list[CallForRules]:
        """`contiguous`: `ids` are every call id from ids[0] to ids[-1] (a keyset page), so the
        sentences are read by one index range instead of a long IN list."""
        calls = conn.execute(select(Call.id, Call.mode, Call.status, Call.duration_s).where(Call.id.in_(ids))).all()
        by_call: dict[str, list[tuple]] = {c.id: [] for c in calls}
        cols = (Sentence.call_id, Sentence.speaker, Sentence.start, Sentence.end, Sentence.text, Sentence.sentiment,
                Sentence.loudness_dbfs)
        if contiguous:
            q = select(*cols).where(Sentence.call_id >= ids[0], Sentence.call_id <= ids[-1])
        else:
            q = select(*cols).where(Sentence.call_id.in_(ids))
        for r in conn.execute(q):
            got = by_call.get(r[0])
            if got is not None:
                got.append(r[1:])
        out = []
        for c in calls:
            sentences = by_call[c.id]
            sentences.sort(key=lambda s: (s[1], s[2]))
            out.append(CallForRules(c.id, c.mode, c.status, c.duration_s, sentences))
        return out

    def iter_calls_for_rules(self, batch: int = 2000, *, since: float | None = None):
        """Every stored call for the rules, `batch` calls per read (keyset pages by id): yields lists."""
        last = ""
        with self.engine.connect() as conn:
            while True:
                q = select(Call.id).where(Call.id > last).order_by(Call.id).limit(batch)
                if since is not None:
                    q = q.where(Call.started_at >= since)
                ids = list(conn.execute(q).scalars())
                if not ids:
                    return
                yield self._calls_for_rules(conn, ids, contiguous=since is None)
                last = ids[-1]

    def add_categories(self, rows: Sequence[CategoryRow], now: float | None = None) -> list[CategoryRow]:
        """Store new matches (a live call's alerts); a category already stored for a call keeps
        its first row. Returns the rows that were new."""
        if not rows:
            return []
        now = now or time.time()
        ids = sorted({r.call_id for r in rows})
        with Session(self.engine) as s:
            have = set(s.exec(select(CallCategory.call_id, CallCategory.category)
                              .where(CallCategory.call_id.in_(ids))).all())
            new = [r for r in rows if (r.call_id, r.category) not in have]
            if new:
                s.connection().execute(self._insert(CallCategory).on_conflict_do_nothing(
                    index_elements=["call_id", "category"]), [self._category_values(r, now) for r in new])
            s.commit()
        return new

    def set_categories(self, call_ids: Sequence[str], rows: Sequence[CategoryRow], now: float | None = None) -> list[CategoryRow]:
        """The calls' categories become exactly `rows` (a final evaluation): categories that no
        longer match go, those still matching keep their first row. Returns the rows that were new."""
        ids = sorted(set(call_ids))
        if not ids:
            return []
        now = now or time.time()
        wanted = {(r.call_id, r.category) for r in rows}
        with Session(self.engine) as s:
            conn = s.connection()
            have = set(conn.execute(select(CallCategory.call_id, CallCategory.category)
                                    .where(CallCategory.call_id.in_(ids))).all())
            gone = [dict(c=c, k=k) for c, k in have - wanted]
            if gone:
                conn.execute(delete(CallCategory).where(CallCategory.call_id == bindparam("c"),
                                                        CallCategory.category == bindparam("k")), gone)
            new = [r for r in rows if (r.call_id, r.category) not in have]
            if new:
                conn.execute(self._insert(CallCategory).on_conflict_do_nothing(index_elements=["call_id", "category"]),
                             [self._category_values(r, now) for r in new])
            s.commit()
        return new

    @staticmethod
    def _category_values(r: CategoryRow, now: float) -> dict:
        return dict(call_id=r.call_id, category=r.category, first_sentence_idx=r.first_sentence_idx,
                    start=r.start, matched_at=now)

    def categories(self, call_id: str) -> list[CallCategory]:
        with Session(self.engine) as s:
            return list(s.exec(select(CallCategory).where(CallCategory.call_id == call_id)
                               .order_by(CallCategory.start, CallCategory.category)).scalars())

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
