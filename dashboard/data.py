"""Everything the dashboard reads and writes, with the signed-in user's role applied in
the query itself: a page cannot ask for rows its user may not see.

Roles (a user may hold several):
- ``manager``: every agent's calls, agent history and the team comparison.
- ``agent``: only calls whose ``agent_id`` is the user's own, and their own history
  (next to the team's average, which names no other agent).
- ``reviewer``: reads any call (to judge a sentence in context) and records label reviews.

Notes to the agent during a call (`add_note`, `notes`): only managers write them, on any
call; a call's notes are read by managers and by that call's agent, by no one else.

`labelled_sentences()` is the one reader without a user: the fine-tuning job's input.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

from sqlalchemy import Integer, and_, cast, exists, false, func, or_, select, true
from sqlalchemy.engine import Engine
from sqlmodel import Session

from callsense.dashboard.analytics import LABELS, Streak, TalkStats, negative_streak, talk_stats
from callsense.store.review import NOTE_MAX_CHARS, CallNote, LabelledSentence, LabelReview, labelled_sentences  # noqa: F401  (labelled_sentences: the pages' import)
from callsense.nlp.characteristics import CallCharacteristics, Spoken, characteristics
from callsense.store.schema import Call, CallCategory, Sentence, Utterance

DAY = 86400.0
SPEAKERS = ("agent", "customer")


class AccessDenied(PermissionError):
    """The signed-in user's role does not allow this read or write."""


@dataclass(frozen=True)
class User:
    username: str
    roles: frozenset[str]
    name: str = ""
    agent_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.username

    def has(self, role: str) -> bool:
        return role in self.roles

    @property
    def sees_all_calls(self) -> bool:
        return bool(self.roles & {"manager", "reviewer"})

    @property
    def can_review(self) -> bool:
        return "reviewer" in self.roles

    @property
    def can_compare_agents(self) -> bool:
        return "manager" in self.roles

    def may_see_agent(self, agent_id: str | None) -> bool:
        if "manager" in self.roles:
            return True
        return "agent" in self.roles and agent_id is not None and agent_id == self.agent_id


@dataclass(frozen=True)
class SentenceKey:
    """The pipeline's natural key of a sentence."""

    call_id: str
    channel: int
    utterance_idx: int
    idx: int

    @classmethod
    def of(cls, s: Sentence) -> "SentenceKey":
        return cls(s.call_id, s.channel, s.utterance_idx, s.idx)


@dataclass(frozen=True)
class LiveCallView:
    call: Call
    sentences: int
    last_stored_at: float | None
    last_text: str
    last_sentiment: str | None
    streak: Streak


@dataclass(frozen=True)
class DayRow:
    day: int  # days since the epoch, in the caller's time zone
    calls: int
    customer: dict[str, int]  # label -> customer sentences that day
    agent: dict[str, int]  # label -> agent sentences that day


@dataclass(frozen=True)
class AgentTotals:
    agent_id: str
    calls: int
    customer: dict[str, int]  # label -> customer sentences

    def customer_share(self, label: str) -> float:
        total = sum(self.customer.values())
        return self.customer.get(label, 0) / total if total else 0.0


@dataclass(frozen=True)
class CallRow:
    call: Call
    sentences: int
    customer: dict[str, int]


@dataclass(frozen=True)
class ReviewItem:
    sentence: Sentence
    context: list[Sentence]  # neighbours in the call, in time order (includes the sentence)

    @property
    def key(self) -> SentenceKey:
        return SentenceKey.of(self.sentence)


@dataclass(frozen=True)
class CallTrend:
    call_id: str
    started_at: float
    agent_wpm: float | None
    customer_wpm: float | None
    agent_loudness_dbfs: float | None
    customer_loudness_dbfs: float | None
    silence_share: float | None
    longest_silence_s: float
    interruptions: int
    agent_interruptions: int
    categories: tuple[str, ...] = ()


def _spoken(s: Sentence) -> Spoken:
    return Spoken(s.speaker, s.start, s.end, s.text, s.sentiment, s.loudness_dbfs)


def _empty_counts() -> dict[str, int]:
    return {label: 0 for label in LABELS}


def _day_bucket(engine: Engine, column, tz_offset_s: float):
    shifted = (column + tz_offset_s) / DAY
    if engine.dialect.name == "postgresql":
        return cast(func.floor(shifted), Integer)
    return cast(shifted, Integer)  # SQLite truncates; call times are positive


class DashboardData:
    """Reads and writes for one signed-in user."""

    def __init__(self, engine: Engine, user: User, *, live_window_h: float = 4.0, negative_streak_n: int = 3,
                 clock=time.time):
        self.engine = engine
        self.user = user
        self.live_window_s = live_window_h * 3600
        self.negative_streak_n = negative_streak_n
        self.clock = clock

    # ---- scope -----------------------------------------------------------------------

    def _call_scope(self, agent_column):
        """The WHERE clause that limits rows to the calls this user may read."""
        if self.user.sees_all_calls:
            return true()
        if "agent" in self.user.roles and self.user.agent_id:
            return agent_column == self.user.agent_id
        return false()

    def _require_agent(self, agent_id: str) -> None:
        if not self.user.may_see_agent(agent_id):
            raise AccessDenied(f"{self.user.username} may not see agent {agent_id}'s history")

    # ---- calls -----------------------------------------------------------------------

    def call(self, call_id: str) -> Call | None:
        """The call, None if it does not exist; AccessDenied if it is not this user's to read."""
        with Session(self.engine) as s:
            call = s.get(Call, call_id)
        if call is None:
            return None
        if not (self.user.sees_all_calls or self.user.may_see_agent(call.agent_id)):
            raise AccessDenied(f"{self.user.username} may not read call {call_id}")
        return call

    def calls(self, *, limit: int = 200, agent_id: str | None = None, mode: str | None = None,
              status: str | None = None, since: float | None = None) -> list[Call]:
        q = select(Call).where(self._call_scope(Call.agent_id)).order_by(Call.started_at.desc()).limit(limit)
        if agent_id is not None:
            q = q.where(Call.agent_id == agent_id)
        if mode:
            q = q.where(Call.mode == mode)
        if status:
            q = q.where(Call.status == status)
        if since is not None:
            q = q.where(Call.started_at >= since)
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())

    def sentences(self, call_id: str, *, after_id: int | None = None) -> list[Sentence]:
        if self.call(call_id) is None:
            return []
        q = select(Sentence).where(Sentence.call_id == call_id).order_by(Sentence.start, Sentence.channel, Sentence.idx)
        if after_id is not None:
            q = q.where(Sentence.id > after_id)
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())

    def utterances(self, call_id: str) -> list[Utterance]:
        if self.call(call_id) is None:
            return []
        q = select(Utterance).where(Utterance.call_id == call_id).order_by(Utterance.start, Utterance.channel)
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())

    def talk_stats(self, call_id: str) -> TalkStats:
        call = self.call(call_id)
        turns = [(u.speaker, u.start, u.end) for u in self.utterances(call_id)]
        return talk_stats(turns, call.duration_s if call else None)

    def corrections(self, call_id: str) -> dict[SentenceKey, LabelReview]:
        """The latest review of each reviewed sentence of a call."""
        if self.call(call_id) is None:
            return {}
        latest = (select(func.max(LabelReview.id)).where(LabelReview.call_id == call_id)
                  .group_by(LabelReview.channel, LabelReview.utterance_idx, LabelReview.idx))
        with Session(self.engine) as s:
            rows = s.exec(select(LabelReview).where(LabelReview.id.in_(latest))).scalars()
            return {SentenceKey(r.call_id, r.channel, r.utterance_idx, r.idx): r for r in rows}

    # ---- live ------------------------------------------------------------------------

    def live_calls(self) -> list[Call]:
        """Live calls in progress (started within the live window and not finished)."""
        since = self.clock() - self.live_window_s
        return self.calls(mode="live", status="processing", since=since, limit=100)

    def finished_live_calls(self, within_s: float = 3600, limit: int = 10) -> list[Call]:
        since = self.clock() - within_s
        q = (select(Call).where(self._call_scope(Call.agent_id), Call.mode == "live", Call.status != "processing",
                                Call.finished_at >= since)
             .order_by(Call.finished_at.desc()).limit(limit))
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())

    def live_overview(self, calls: Sequence[Call]) -> list[LiveCallView]:
        """Per call: sentences so far, the last one, and the customer's negative streak."""
        ids = [c.id for c in calls]
        if not ids:
            return []
        q = (select(Sentence.call_id, Sentence.speaker, Sentence.start, Sentence.sentiment, Sentence.text, Sentence.stored_at)
             .where(Sentence.call_id.in_(ids), self._call_scope(Sentence.agent_id)).order_by(Sentence.start))
        with Session(self.engine) as s:
            rows = s.exec(q).all()
        per: dict[str, list] = {i: [] for i in ids}
        for r in rows:
            per[r.call_id].append(r)
        out = []
        for call in calls:
            rs = per[call.id]
            last = rs[-1] if rs else None
            streak = negative_streak(((r.speaker, r.start, r.sentiment) for r in rs), self.negative_streak_n)
            out.append(LiveCallView(call=call, sentences=len(rs), last_stored_at=max((r.stored_at for r in rs), default=None),
                                    last_text=last.text if last else "", last_sentiment=last.sentiment if last else None,
                                    streak=streak))
        return out

    def streak(self, sentences: Iterable[Sentence]) -> Streak:
        return negative_streak(((s.speaker, s.start, s.sentiment) for s in sentences), self.negative_streak_n)

    def my_live_calls(self) -> list[Call]:
        """An agent's own calls in progress, newest first (empty for a user without an agent id)."""
        if "agent" not in self.user.roles or not self.user.agent_id:
            return []
        return [c for c in self.live_calls() if c.agent_id == self.user.agent_id]

    # ---- notes to the agent ------------------------------------------------------------

    @property
    def can_send_notes(self) -> bool:
        return "manager" in self.user.roles

    def may_read_notes(self, call: Call) -> bool:
        """Managers, and the call's own agent."""
        return self.user.may_see_agent(call.agent_id)

    def add_note(self, call_id: str, text: str) -> CallNote:
        """A manager's note to the call's agent, stored with the call. AccessDenied for anyone
        else; ValueError for an empty note or one over NOTE_MAX_CHARS; LookupError for no call."""
        if not self.can_send_notes:
            raise AccessDenied(f"{self.user.username} may not send notes to agents (managers only)")
        # Control characters other than line breaks and tabs would only hide text (and NUL is refused by PostgreSQL).
        clean = "".join(c for c in str(text or "") if c in "\n\t" or c.isprintable()).strip()
        if not clean:
            raise ValueError("The note is empty.")
        if len(clean) > NOTE_MAX_CHARS:
            raise ValueError(f"A note is at most {NOTE_MAX_CHARS:,} characters; this one has {len(clean):,}. "
                             "Shorten it and send it again.")
        call = self.call(call_id)
        if call is None:
            raise LookupError(f"no call {call_id}")
        row = CallNote(call_id=call_id, author=self.user.username, agent_id=call.agent_id, text=clean,
                       created_at=self.clock())
        with Session(self.engine) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        return row

    def notes(self, call_id: str, *, limit: int = 200) -> list[CallNote]:
        """The call's notes, newest first. AccessDenied unless a manager or the call's agent."""
        call = self.call(call_id)
        if call is None:
            return []
        if not self.may_read_notes(call):
            raise AccessDenied(f"{self.user.username} may not read the notes of call {call_id}")
        # The scope is in the query too: the note's call must be one this user may read.
        scope = true() if "manager" in self.user.roles else Call.agent_id == self.user.agent_id
        q = (select(CallNote).join(Call, Call.id == CallNote.call_id).where(CallNote.call_id == call_id, scope)
             .order_by(CallNote.created_at.desc(), CallNote.id.desc()).limit(limit))
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())

    # ---- agents ----------------------------------------------------------------------

    def agents(self) -> list[str]:
        """Agent ids this user may look at, most recent first is not needed: sorted."""
        if "manager" in self.user.roles:
            with Session(self.engine) as s:
                ids = s.exec(select(Call.agent_id).where(Call.agent_id.is_not(None)).distinct()).scalars()
                return sorted(ids)
        if "agent" in self.user.roles and self.user.agent_id:
            return [self.user.agent_id]
        return []

    def agent_history(self, agent_id: str, days: int, *, tz_offset_s: float = 0.0) -> list[DayRow]:
        """Per day over the last `days`: calls, and sentences by speaker and sentiment.
        Two grouped queries over the (agent_id, call_started_at, ...) indexes."""
        self._require_agent(agent_id)
        since = self.clock() - days * DAY
        day_s = _day_bucket(self.engine, Sentence.call_started_at, tz_offset_s).label("day")
        day_c = _day_bucket(self.engine, Call.started_at, tz_offset_s).label("day")
        q_sent = (select(day_s, Sentence.speaker, Sentence.sentiment, func.count())
                  .where(Sentence.agent_id == agent_id, Sentence.speaker.in_(SPEAKERS), Sentence.sentiment.in_(LABELS),
                         Sentence.call_started_at >= since)
                  .group_by(day_s, Sentence.speaker, Sentence.sentiment))
        q_calls = (select(day_c, func.count()).where(Call.agent_id == agent_id, Call.started_at >= since)
                   .group_by(day_c))
        with Session(self.engine) as s:
            sent_rows = s.exec(q_sent).all()
            call_rows = s.exec(q_calls).all()
        calls = dict(call_rows)
        counts: dict[int, dict[str, dict[str, int]]] = {}
        for day, speaker, label, n in sent_rows:
            per = counts.setdefault(day, {"customer": _empty_counts(), "agent": _empty_counts()})
            if speaker in per:
                per[speaker][label] = per[speaker].get(label, 0) + n
        out = []
        for day in sorted(set(calls) | set(counts)):
            per = counts.get(day, {"customer": _empty_counts(), "agent": _empty_counts()})
            out.append(DayRow(day=day, calls=calls.get(day, 0), customer=per["customer"], agent=per["agent"]))
        return out

    def team_comparison(self, days: int) -> list[AgentTotals]:
        """Every agent's totals over the period (managers only)."""
        if not self.user.can_compare_agents:
            raise AccessDenied(f"{self.user.username} may not compare agents")
        return self._agent_totals(days)

    def team_average(self, days: int) -> AgentTotals:
        """The whole team's totals over the period, naming no agent (any user with a history)."""
        if not (self.user.can_compare_agents or "agent" in self.user.roles):
            raise AccessDenied(f"{self.user.username} has no agent history to compare")
        customer = _empty_counts()
        calls = 0
        for t in self._agent_totals(days):
            calls += t.calls
            for label, n in t.customer.items():
                customer[label] += n
        return AgentTotals(agent_id="(team)", calls=calls, customer=customer)

    def _all_agent_ids(self) -> list[str]:
        with Session(self.engine) as s:
            return sorted(s.exec(select(Call.agent_id).where(Call.agent_id.is_not(None)).distinct()).scalars())

    def _agent_totals(self, days: int) -> list[AgentTotals]:
        """Calls and customer sentences by label per agent. The agents and labels are named
        in the query so it runs as index-only seeks on ix_sentences_agent_mix."""
        since = self.clock() - days * DAY
        agents = self._all_agent_ids()
        if not agents:
            return []
        q = (select(Sentence.agent_id, Sentence.sentiment, func.count())
             .where(Sentence.agent_id.in_(agents), Sentence.speaker == "customer", Sentence.sentiment.in_(LABELS),
                    Sentence.call_started_at >= since)
             .group_by(Sentence.agent_id, Sentence.sentiment))
        q_calls = (select(Call.agent_id, func.count()).where(Call.agent_id.in_(agents), Call.started_at >= since)
                   .group_by(Call.agent_id))
        with Session(self.engine) as s:
            rows = s.exec(q).all()
            calls = dict(s.exec(q_calls).all())
        out: dict[str, AgentTotals] = {a: AgentTotals(a, calls.get(a, 0), _empty_counts()) for a in agents}
        for agent_id, label, n in rows:
            out[agent_id].customer[label] += n
        return sorted((t for t in out.values() if t.calls or sum(t.customer.values())), key=lambda t: t.agent_id)

    def agent_calls(self, agent_id: str, days: int, limit: int = 500) -> list[CallRow]:
        """An agent's calls in the period, newest first, with customer sentiment counts."""
        self._require_agent(agent_id)
        since = self.clock() - days * DAY
        q_calls = (select(Call).where(Call.agent_id == agent_id, Call.started_at >= since)
                   .order_by(Call.started_at.desc()).limit(limit))
        with Session(self.engine) as s:
            calls = list(s.exec(q_calls).scalars())
            q = (select(Sentence.call_id, Sentence.speaker, Sentence.sentiment, func.count())
                 .where(Sentence.agent_id == agent_id, Sentence.speaker.in_(SPEAKERS), Sentence.sentiment.in_(LABELS),
                        Sentence.call_started_at >= since)
                 .group_by(Sentence.call_id, Sentence.speaker, Sentence.sentiment))
            rows = s.exec(q).all()
        per: dict[str, dict[str, int]] = {}
        totals: dict[str, int] = {}
        for call_id, speaker, label, n in rows:
            totals[call_id] = totals.get(call_id, 0) + n
            if speaker == "customer":
                per.setdefault(call_id, _empty_counts())[label] += n
        return [CallRow(c, totals.get(c.id, 0), per.get(c.id, _empty_counts())) for c in calls]

    # ---- characteristics and categories ------------------------------------------------

    def characteristics(self, call_id: str, sentences: Sequence[Sentence] | None = None) -> CallCharacteristics:
        """Talk speed, loudness, silences and interruptions of a call (what is stored so far)."""
        call = self.call(call_id)
        if call is None:
            return characteristics([])
        rows = self.sentences(call_id) if sentences is None else sentences
        done = call.status != "processing"
        return characteristics([_spoken(s) for s in rows], call.duration_s if done else None)

    def categories(self, call_id: str) -> list[CallCategory]:
        return self.categories_of([call_id]).get(call_id, [])

    def categories_of(self, call_ids: Sequence[str]) -> dict[str, list[CallCategory]]:
        """Per call (of those this user may read): its categories in the order they matched in the call."""
        ids = sorted(set(call_ids))
        if not ids:
            return {}
        out: dict[str, list[CallCategory]] = {}
        with Session(self.engine) as s:
            for i in range(0, len(ids), 900):
                q = (select(CallCategory).join(Call, Call.id == CallCategory.call_id)
                     .where(CallCategory.call_id.in_(ids[i:i + 900]), self._call_scope(Call.agent_id))
                     .order_by(CallCategory.start, CallCategory.category))
                for row in s.exec(q).scalars():
                    out.setdefault(row.call_id, []).append(row)
        return out

    def category_names(self) -> list[str]:
        """Every category stored for some call this user may read."""
        q = (select(CallCategory.category).join(Call, Call.id == CallCategory.call_id)
             .where(self._call_scope(Call.agent_id)).distinct())
        with Session(self.engine) as s:
            return sorted(s.exec(q).scalars())

    def agent_trends(self, agent_id: str, days: int, limit: int = 2000) -> list[CallTrend]:
        """Per call of the agent in the period (oldest first): talk speed, loudness, silence share,
        interruptions and categories."""
        self._require_agent(agent_id)
        since = self.clock() - days * DAY
        with Session(self.engine) as s:
            calls = list(s.exec(select(Call).where(Call.agent_id == agent_id, Call.started_at >= since,
                                                   Call.status != "failed")
                                .order_by(Call.started_at.desc()).limit(limit)).scalars())
            ids = [c.id for c in calls]
            per: dict[str, list[Spoken]] = {i: [] for i in ids}
            for i in range(0, len(ids), 900):
                rows = s.exec(select(Sentence.call_id, Sentence.speaker, Sentence.start, Sentence.end, Sentence.text,
                                     Sentence.sentiment, Sentence.loudness_dbfs)
                              .where(Sentence.call_id.in_(ids[i:i + 900]))).all()
                for r in rows:
                    per[r[0]].append(Spoken(*r[1:]))
        cats = self.categories_of(ids)
        out = []
        for c in reversed(calls):
            st = characteristics(per[c.id], c.duration_s if c.status != "processing" else None)
            agent = st.speakers.get("agent")
            customer = st.speakers.get("customer")
            out.append(CallTrend(
                call_id=c.id, started_at=c.started_at, agent_wpm=agent.wpm if agent else None,
                customer_wpm=customer.wpm if customer else None,
                agent_loudness_dbfs=agent.loudness_dbfs if agent else None,
                customer_loudness_dbfs=customer.loudness_dbfs if customer else None,
                silence_share=st.silence_share, longest_silence_s=st.longest_silence.length if st.longest_silence else 0.0,
                interruptions=len(st.interruptions),
                agent_interruptions=agent.interruptions if agent else 0,
                categories=tuple(k.category for k in cats.get(c.id, []))))
        return out

    # ---- review ----------------------------------------------------------------------

    def _require_reviewer(self) -> None:
        if not self.user.can_review:
            raise AccessDenied(f"{self.user.username} may not review labels")

    @staticmethod
    def _reviewed(sentence=Sentence):
        return exists().where(LabelReview.call_id == sentence.call_id, LabelReview.channel == sentence.channel,
                              LabelReview.utterance_idx == sentence.utterance_idx, LabelReview.idx == sentence.idx)

    def review_queue(self, *, order: Literal["confidence", "sample"] = "confidence", limit: int = 1,
                     speaker: str | None = None, label: str | None = None, skip: Iterable[SentenceKey] = (),
                     context: int = 2, rng: random.Random | None = None) -> list[ReviewItem]:
        """Sentences nobody has reviewed yet: lowest confidence first, or a random sample."""
        self._require_reviewer()
        skip = set(skip)
        q = select(Sentence).where(~self._reviewed())
        if speaker:
            q = q.where(Sentence.speaker == speaker)
        if label:
            q = q.where(Sentence.sentiment == label)
        if skip:
            q = q.where(~or_(*[and_(Sentence.call_id == k.call_id, Sentence.channel == k.channel,
                                    Sentence.utterance_idx == k.utterance_idx, Sentence.idx == k.idx) for k in skip]))
        with Session(self.engine) as s:
            if order == "sample":
                # A random starting id, then the next rows by id: uniform enough, and an index seek
                # instead of ORDER BY random() over the whole table.
                # Two statements: SQLite reads min() and max() from the index only when each is alone.
                lo = s.exec(select(func.min(Sentence.id))).scalar_one()
                hi = s.exec(select(func.max(Sentence.id))).scalar_one()
                if lo is None:
                    return []
                pivot = (rng or random).randint(lo, hi)
                picked = list(s.exec(q.where(Sentence.id >= pivot).order_by(Sentence.id).limit(limit)).scalars())
                if len(picked) < limit:
                    picked += list(s.exec(q.where(Sentence.id < pivot).order_by(Sentence.id).limit(limit - len(picked))).scalars())
            else:
                picked = list(s.exec(q.order_by(Sentence.confidence, Sentence.id).limit(limit)).scalars())
            items = []
            for sent in picked:
                ctx = list(s.exec(select(Sentence).where(Sentence.call_id == sent.call_id)
                                  .order_by(Sentence.start, Sentence.channel, Sentence.idx)).scalars())
                pos = next((i for i, c in enumerate(ctx) if c.id == sent.id), 0)
                items.append(ReviewItem(sent, ctx[max(0, pos - context):pos + context + 1]))
        return items

    def record_review(self, key: SentenceKey, *, sentiment: str, text: str | None = None) -> LabelReview:
        """Store a reviewer's verdict: `accepted` when label and text are unchanged, else `corrected`."""
        self._require_reviewer()
        if sentiment not in LABELS:
            raise ValueError(f"unknown sentiment '{sentiment}' (one of {', '.join(LABELS)})")
        with Session(self.engine) as s:
            sent = s.exec(select(Sentence).where(Sentence.call_id == key.call_id, Sentence.channel == key.channel,
                                                 Sentence.utterance_idx == key.utterance_idx, Sentence.idx == key.idx)).scalar_one_or_none()
            if sent is None:
                raise LookupError(f"no sentence {key} (was the call reprocessed?)")
            final_text = sent.text if text is None or not text.strip() else text.strip()
            action = "accepted" if (sentiment == sent.sentiment and final_text == sent.text) else "corrected"
            row = LabelReview(call_id=key.call_id, channel=key.channel, utterance_idx=key.utterance_idx, idx=key.idx,
                              sentence_id=sent.id, speaker=sent.speaker, agent_id=sent.agent_id,
                              original_text=sent.text, original_sentiment=sent.sentiment,
                              original_confidence=sent.confidence, sentiment_model=sent.sentiment_model,
                              text=final_text, sentiment=sentiment, action=action, reviewer=self.user.username,
                              reviewed_at=self.clock())
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def review_counts(self) -> dict[str, int]:
        """Queue size and progress, for the Review page's header."""
        self._require_reviewer()
        day_start = self.clock() - DAY
        with Session(self.engine) as s:
            total = s.exec(select(func.count()).select_from(Sentence)).scalar_one()
            reviewed = s.exec(select(func.count()).select_from(Sentence).where(self._reviewed())).scalar_one()
            mine_today = s.exec(select(func.count()).select_from(LabelReview).where(
                LabelReview.reviewer == self.user.username, LabelReview.reviewed_at >= day_start)).scalar_one()
            corrected = s.exec(select(func.count()).select_from(LabelReview).where(LabelReview.action == "corrected")).scalar_one()
        return {"sentences": total, "reviewed": reviewed, "waiting": total - reviewed, "mine_24h": mine_today,
                "corrections": corrected}

    def recent_reviews(self, limit: int = 20, mine_only: bool = False) -> list[LabelReview]:
        self._require_reviewer()
        q = select(LabelReview).order_by(LabelReview.reviewed_at.desc(), LabelReview.id.desc()).limit(limit)
        if mine_only:
            q = q.where(LabelReview.reviewer == self.user.username)
        with Session(self.engine) as s:
            return list(s.exec(q).scalars())
