"""The dialog engine: walks Jarvis/Riva-style flows, one user turn at a time.

A turn starts at the input state the session waits in, runs the NLU on the user's text,
and follows transitions (saying messages, changing the context, asking providers) until
it reaches an input state again, where it stops and waits. The session's state and
context are loaded from and saved to the store on every turn, so any number of sessions
run at once (turns of one session are serialised), and a restarted process carries on.

Guarantees: every turn gets a non-empty reply and raises nothing for any input (NLU
outages route to `jarvis_error`, provider failures to an apology, engine faults to a
generic apology); the same seed gives the same conversation.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from callsense.core.settings import Settings
from callsense.dialog.flows import model as m
from callsense.dialog.fulfillment.base import FulfillmentError, FulfillmentProvider, FulfillmentResources, fulfillment_providers
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NLU_ERROR, NO_MATCH, NluBackend, NluResult, NluUnavailable
from callsense.dialog.nlu.normalize import looks_like_code, normalize_words, plausible_value, project_tags
from callsense.dialog.nlu.understanding import ENTITY_KEYS, Understanding
from callsense.dialog.sessions import SessionState, SessionStore
from callsense.dialog.templates import render

log = logging.getLogger("callsense.dialog")

FALLBACK_NOT_UNDERSTOOD = "Sorry, I didn't understand that. You can ask me about the weather, stores and prices."
FALLBACK_NLU_DOWN = "Sorry, I can't understand requests right now. Please try again in a moment."
FALLBACK_ENGINE_FAULT = "Sorry, something went wrong on my side. Let's start over: what can I do for you?"
FALLBACK_PROVIDER = "Sorry, I can't get that information right now. Please try again in a moment."
FALLBACK_EMPTY = "Sorry, I have no answer to that."
#: Said before the reply when the user's text was longer than `dialog_max_input_chars`.
INPUT_CUT = "Your message was long, so I read only its first {limit} characters."
#: Said after the answer when the user asked several questions at once (the first is answered).
ALSO_ASKED = "You also asked \u201c{question}\u201d: ask me that next."
MAX_SLOT_CHARS = 200
#: An input_user answer that the NLU reads as a new question with at least this confidence is one.
NEW_QUESTION_CONFIDENCE = 0.8


@dataclass
class Message:
    text: str
    delay_s: float = 0.0  # seconds to wait before saying it (message_text_random `delay`)
    state: str = ""


@dataclass
class Reply:
    """What the assistant says for one user turn, and where the conversation stands."""

    session_id: str
    text: str  # all messages of the turn, joined
    state: str  # the input state the conversation now waits in
    intent: str | None  # the NLU's label for this turn (None for a start without input)
    slots: dict[str, str]
    confidence: float | None = None
    messages: list[Message] = field(default_factory=list)
    turn: int = 0
    visited: list[str] = field(default_factory=list)  # states passed during the turn, in order
    missing_keys: list[str] = field(default_factory=list)  # templates that rendered empty
    error: str | None = None  # NLU / provider / engine failure detail, when there was one
    context: dict[str, Any] = field(default_factory=dict)  # the context after the turn (a copy)
    follow_up: str | None = None  # taken as a follow-up: the intent of the question asked again
    truncated: bool = False  # the user's text was cut to dialog_max_input_chars (and the reply says so)


@dataclass
class _Turn:
    messages: list[Message] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    nlu: NluResult | None = None
    intent: str | None = None
    error: str | None = None
    follow_up: str | None = None
    truncated: bool = False


class _LoopGuard(Exception):
    pass


def clean_text(text: object, limit: int) -> str:
    """User input as the engine handles it: a string, control characters removed, cut to `limit`
    (at the last blank before it, when there is one: no half word)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) > limit:
        cut = text[:limit]
        if not text[limit].isspace() and " " in cut.strip():
            cut = cut.rstrip().rsplit(" ", 1)[0] if not cut[-1].isspace() else cut
        text = cut
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch == " " else " " for ch in text)
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cs")
    return text.strip()


class DialogEngine:
    """Runs flows for many sessions. Build it once; call `start` / `reply` from any thread."""

    def __init__(self, flows: m.FlowSet, nlu: NluBackend, *, db: Engine, settings: Settings | None = None,
                 seed: int | None = None, fulfillment: FulfillmentResources | None = None,
                 clock: Callable[[], float] = time.time):
        self.flows = flows
        self.nlu = nlu
        # normalisation, slot checks and small talk around the backend (nlu/understanding.py)
        self.understanding = Understanding(nlu, intents=set(flows.intent_transitions))
        self.follow_up_rules = flows.follow_up()  # None: NARA's context rules (flows without `follow_up`)
        self.settings = settings or Settings()
        self.sessions = SessionStore(db)
        self.seed = seed if seed is not None else self.settings.dialog.seed
        self._entropy = os.urandom(8).hex()
        self.clock = clock
        self.resources = fulfillment or FulfillmentResources(self.settings, db)
        if self.resources.db is None:
            self.resources.db = db
        self._locks = [threading.Lock() for _ in range(64)]
        self._fallback_input = flows.first_input_state()
        self.providers: dict[str, FulfillmentProvider] = {}
        for st in flows.states.values():  # fail at start-up, not in the middle of a conversation
            if st.is_fulfillment and st.type not in self.providers:
                self.providers[st.type] = fulfillment_providers.get(st.type)(self.resources)

    # ---- public ------------------------------------------------------------------

    def start(self, session_id: str) -> Reply:
        """Begin (or resume) a conversation: the greeting, up to the first input state.
        A session that already waits for input gets an empty reply."""
        return self._turn(session_id, None)

    def reply(self, session_id: str, text: str, *, asr_confidence: float | None = None,
              channel: str = "text") -> Reply:
        """One user turn. A new session is started first (its greeting is part of the reply).
        Text beyond `dialog_max_input_chars` is not read, and the reply says so."""
        limit = self.settings.dialog.max_input_chars
        truncated = isinstance(text, str) and len(text) > limit and bool(text[limit:].strip())
        return self._turn(session_id, clean_text(text, limit), asr_confidence=asr_confidence, channel=channel,
                          truncated=truncated)

    def reset(self, session_id: str) -> None:
        """Start the conversation over under the same id. The archive keys turns by (session,
        turn number), so the count goes on from where it was; only state and context go."""
        session_id = str(session_id)[:200] or "default"
        with self._lock(session_id):
            old = self.sessions.load(session_id)
            if old is None:
                return
            self.sessions.save(SessionState(session_id, self.flows.start_state, {}, old.turns, self.flows.main.name,
                                            self.clock(), is_new=False))

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()

    # ---- a turn ------------------------------------------------------------------

    def _lock(self, session_id: str) -> threading.Lock:
        return self._locks[hash(session_id) % len(self._locks)]

    def _turn(self, session_id: str, text: str | None, *, asr_confidence: float | None = None,
              channel: str = "text", truncated: bool = False) -> Reply:
        started = time.perf_counter()
        session_id = str(session_id)[:200] or "default"
        with self._lock(session_id):
            session = self.sessions.load(session_id)
            if session is None or session.flows != self.flows.main.name or session.state not in self.flows.states:
                if session is None:
                    session = SessionState(session_id, self.flows.start_state, {}, 0, self.flows.main.name,
                                           self.clock())
                else:  # flows changed under a stored session: keep what it knows, restart the walk
                    session.state, session.flows = self.flows.start_state, self.flows.main.name
            if text is None and not session.is_new and self.flows.states[session.state].is_input:
                return self._reply(session, _Turn(), None)
            turn = _Turn(truncated=truncated)
            if truncated:
                turn.messages.append(Message(INPUT_CUT.format(limit=self.settings.dialog.max_input_chars)))
            try:
                self._advance(session, text, turn)
            except Exception as e:  # noqa: BLE001 - a conversation must survive an engine fault
                if not isinstance(e, _LoopGuard):
                    log.exception("dialog engine fault in session %s at state %s", session_id, session.state)
                turn.error = f"engine: {e}"
                turn.messages.append(Message(FALLBACK_ENGINE_FAULT))
                session.state = self._fallback_input or self.flows.start_state
            also = (turn.nlu.extra or {}).get("also_asked") if turn.nlu is not None else None
            if also and any(msg.text for msg in turn.messages[1 if truncated else 0:]):
                turn.messages.append(Message(ALSO_ASKED.format(question=also[0].rstrip("?") + "?")))
            if not any(msg.text for msg in turn.messages[1 if truncated else 0:]) and text is not None:
                turn.messages.append(Message(FALLBACK_EMPTY))
            if text is not None:
                session.turns += 1
            reply = self._reply(session, turn, text)
            record = None
            if text is not None:
                record = self._archive_record(session, reply, text, turn, asr_confidence, channel,
                                              (time.perf_counter() - started) * 1000)
            try:
                self.sessions.save(session, record)
            except SQLAlchemyError as e:
                log.error("dialog: cannot save session %s: %s", session_id, e)
                reply.error = reply.error or f"store: {e.__class__.__name__}"
            return reply

    def _reply(self, session: SessionState, turn: _Turn, text: str | None) -> Reply:
        nlu = turn.nlu
        return Reply(
            session_id=session.session_id,
            text=" ".join(msg.text for msg in turn.messages if msg.text),
            state=session.state,
            intent=turn.intent,
            slots=dict(nlu.slots) if nlu else {},
            confidence=nlu.confidence if nlu else None,
            messages=turn.messages,
            turn=session.turns,
            visited=turn.visited,
            missing_keys=turn.missing,
            error=turn.error,
            context=dict(session.context),
            follow_up=turn.follow_up,
            truncated=turn.truncated,
        )

    def _archive_record(self, session: SessionState, reply: Reply, text: str, turn: _Turn,
                        asr_confidence: float | None, channel: str, latency_ms: float) -> dict[str, Any]:
        now = self.clock()
        nlu = turn.nlu
        tokens, tags = _words_as_written(text, nlu)
        return dict(
            session_id=session.session_id, turn=session.turns, at=now,
            day=datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%d"),
            channel=channel, text=text, asr_confidence=asr_confidence, intent=turn.intent,
            confidence=nlu.confidence if nlu else None,
            slots_json=json.dumps(dict(nlu.slots) if nlu else {}, ensure_ascii=False),
            tokens=" ".join(tokens), tags=" ".join(tags),
            state=session.state, reply=reply.text, nlu_backend=getattr(self.nlu, "name", "?"),
            latency_ms=round(latency_ms, 3),
        )

    def _rng(self, session: SessionState, step: int) -> random.Random:
        basis = self.seed if self.seed is not None else self._entropy
        return random.Random(f"{basis}|{session.session_id}|{session.turns}|{step}")

    def _advance(self, session: SessionState, text: str | None, turn: _Turn) -> None:
        flows, ctx = self.flows, session.context
        name = session.state
        pending = text
        for step in range(self.settings.dialog.max_steps):
            st = flows.states.get(name)
            if st is None:
                raise RuntimeError(f"no state '{name}'")
            turn.visited.append(st.name)
            outcome: str | None = None
            if st.is_input:
                if pending is None:
                    session.state = st.name
                    return
                outcome = self._input(st, pending, ctx, turn)
                pending = None
                if outcome == "stay":
                    session.state = st.name
                    return
                if outcome.startswith("route:"):
                    name = outcome[6:]
                    continue
            elif st.type == m.MESSAGE_TEXT:
                self._say(st, str(st.properties.get("text", "")), ctx, turn)
            elif st.type == m.MESSAGE_TEXT_RANDOM:
                responses = st.properties.get("responses") or [""]
                self._say(st, self._rng(session, step).choice(responses), ctx, turn)
            elif st.type == m.CHANGE_CONTEXT:
                for key in st.properties.get("del_keys") or ():  # ALQUIST: deleted first, then updated
                    ctx.pop(key, None)
                for key, value in (st.properties.get("update_keys") or {}).items():
                    if isinstance(value, str):
                        value, missing = render(value, ctx)
                        turn.missing += missing
                    ctx[str(key)] = value
            elif st.type == m.CONDITIONAL_EXISTS:
                key = m.template_key(st.properties.get("key"))
                value = ctx.get(key) if key else None
                outcome = "exists" if value not in (None, "", [], {}) else "notexists"
            elif st.type == m.CONDITIONAL_EQUAL:
                first, second = (self._value(st.properties.get(k), ctx, turn) for k in ("value1", "value2"))
                outcome = "equal" if first == second else "notequal"
            elif st.type == m.RESET:
                ctx.clear()
            elif st.is_fulfillment:
                outcome = self._fulfill(st, ctx, turn)
            target = flows.target(st, outcome)
            if target is None:  # the end of a file with nowhere to go: back to the main input
                target = self._fallback_input
                if target is None:
                    raise RuntimeError(f"state '{st.name}' leads nowhere and there is no input state")
            name = target
        raise _LoopGuard(f"more than {self.settings.dialog.max_steps} states in one turn (a loop in the flows?)")

    @staticmethod
    def _value(raw: object, ctx: dict, turn: _Turn) -> str:
        """A conditional_equal value as compared: templates filled, YAML's true/false/null and
        numbers as their text ("3" and 3 are equal), blanks around it ignored."""
        if raw is None:
            return ""
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        text, missing = render(str(raw), ctx)
        turn.missing += missing
        return text.strip()

    def _say(self, st: m.State, template: str, ctx: dict, turn: _Turn) -> None:
        text, missing = render(template, ctx)
        if missing:
            turn.missing += missing
            log.debug("state %s: template keys not set: %s", st.name, ", ".join(missing))
        turn.messages.append(Message(text.strip(), st.delay, st.name))

    def _input(self, st: m.State, text: str, ctx: dict, turn: _Turn) -> str:
        """Run the NLU on the user's text; return the outcome (match/notmatch), 'route:STATE'
        for an intent transition, or 'stay' (said a built-in apology or `error_text`, wait again)."""
        routes = self.flows.intent_transitions
        ctx["user_text"] = text
        try:
            result = self.understanding.parse(text)
            if not isinstance(result, NluResult):
                raise NluUnavailable(f"NLU returned {type(result).__name__}, not NluResult")
        except Exception as e:  # noqa: BLE001 - any NLU failure is an outage for the conversation
            if not isinstance(e, NluUnavailable):
                log.exception("NLU backend %s failed", getattr(self.nlu, "name", "?"))
            detail = str(e) or e.__class__.__name__
            ctx[NLU_ERROR] = detail
            turn.intent, turn.error = NLU_ERROR, f"nlu: {detail}"
            turn.nlu = NluResult(NLU_ERROR, 0.0, {}, labels.tokenize(text), [])
            if st.type == m.INPUT_CONTEXT:
                ctx["intent"] = ctx["nlu_intent"] = NLU_ERROR
            if NLU_ERROR in routes:
                return f"route:{routes[NLU_ERROR]}"
            if st.type == m.INPUT_USER:
                return "notmatch"
            turn.messages.append(Message(FALLBACK_NLU_DOWN, 0.0, st.name))
            return "stay"
        ctx.pop(NLU_ERROR, None)
        ctx.pop("follow_up", None)
        turn.nlu = result
        intent = result.intent if result.confidence >= self.settings.dialog.nlu_min_confidence else NO_MATCH
        turn.intent = intent
        slots = {str(k): clean_text(v, MAX_SLOT_CHARS) for k, v in (result.slots or {}).items()}
        slots = {k: v for k, v in slots.items() if v}

        if st.type == m.INPUT_USER:
            entities = st.properties.get("entities") or {}
            slot = str(entities.get("slot", "")).strip()
            require = bool(entities.get("require_match", False))
            value = slots.get(slot)
            # Not an answer but a new, confidently understood question: take it as one. An
            # answer that fills the slot is still a new question when it belongs to another
            # flow ("how much is laptop memory in Seattle" when the weather flow asked for a
            # location).
            if intent != NO_MATCH and intent in routes and result.confidence >= NEW_QUESTION_CONFIDENCE:
                target = routes[intent]
                other_flow = target in self.flows.states and self.flows.states[target].flow != st.flow
                # (with follow_up rules) another question of the same flow, said in words of
                # its own: "where can I buy airpods" when the stock question asked which item
                last = ctx.get("last_question")
                pending = last.get("intent") if isinstance(last, dict) else None
                other_question = (self.follow_up_rules is not None and intent != pending
                                  and not _only_slots(result, slots))
                if value is None or other_flow or other_question:
                    self._new_question(ctx, intent, result.confidence, slots, result.tokens)
                    return f"route:{target}"
            if value is None and not require and text:
                raw = clean_text(text, MAX_SLOT_CHARS)
                # the answer as said, unless it is code or (for an entity slot) names nothing
                if raw and not looks_like_code(raw) and (slot not in ENTITY_KEYS or plausible_value(raw)):
                    value = raw
            if value:
                ctx.update(slots)
                ctx[slot] = value
                if self.follow_up_rules is not None:
                    self._remember(ctx, {**slots, slot: value})
                return "match"
            error_text = st.properties.get("error_text")
            if require and error_text:  # ALQUIST: say it and ask again
                self._say(st, str(error_text), ctx, turn)
                return "stay"
            return "notmatch"

        if st.follow_up is not None:
            found = self._follow_up_of(st.follow_up, result, slots, ctx)
            if found is not None:
                previous, asked = found
                ctx.pop("fulfillment_error", None)
                ctx["intent"] = ctx["nlu_intent"] = previous
                ctx["nlu_confidence"] = round(float(result.confidence), 4)
                self._set_question(ctx, previous, asked)
                ctx["follow_up"] = sorted(slots)
                turn.follow_up = previous
                return f"route:{routes[previous]}"
        self._new_question(ctx, intent, result.confidence, slots, result.tokens)
        target = routes.get(intent) or routes.get(NO_MATCH)
        if target is None:
            turn.messages.append(Message(FALLBACK_NOT_UNDERSTOOD, 0.0, st.name))
            return "stay"
        return f"route:{target}"

    # ---- questions, follow-ups and the context's slots ----------------------------

    def _is_question(self, intent: str | None) -> bool:
        """An intent the flows route that asks something (not nomatch, an outage or small talk)."""
        return (intent in self.flows.intent_transitions and intent not in (NO_MATCH, NLU_ERROR)
                and intent not in labels.RULE_INTENTS)

    def _new_question(self, ctx: dict, intent: str, confidence: float, slots: dict[str, str],
                      tokens: list[str] | None = None) -> None:
        ctx.pop("fulfillment_error", None)
        rules = self.follow_up_rules
        if rules is None:  # NARA: turn-scoped slots cleared, the others remembered
            for key in labels.TURN_SCOPED_KEYS:
                ctx.pop(key, None)
            ctx.update(slots)
        ctx["intent"] = ctx["nlu_intent"] = intent
        ctx["nlu_confidence"] = round(float(confidence), 4)
        if rules is None or not self._is_question(intent):
            return  # with follow_up rules, nomatch and small talk change no slot
        memory: dict = ctx.get("slot_memory") if isinstance(ctx.get("slot_memory"), dict) else {}
        asked: dict[str, Any] = {}
        for key in rules.keep:
            value = ctx.get(key) or memory.get(key)
            if value not in (None, ""):
                asked[key] = value
        words = list(tokens or [])
        domain = rules.slots_for(intent)  # "will it rain": no item of a price question
        referred = [key for key, phrases in rules.refer.items()
                    if key in domain and key not in slots and key in memory and _mentions(words, phrases)]
        for group in rules.alternatives:  # "it" means the most recent of item / store_type
            if group & set(slots):  # the question names one of them itself
                referred = [k for k in referred if k not in group]
                continue
            named = [k for k in referred if k in group]
            if len(named) > 1:
                latest = [k for k in memory if k in named][-1]
                referred = [k for k in referred if k not in group or k == latest]
        for key in referred:
            asked[key] = memory[key]
        asked.update(slots)
        self._set_question(ctx, intent, asked)

    def _set_question(self, ctx: dict, intent: str, asked: dict[str, Any]) -> None:
        """The question now asked: its slots replace all slots of the one before."""
        for key in labels.CONTEXT_SLOT_KEYS | self.follow_up_rules.all_slots:
            ctx.pop(key, None)
        ctx.update(asked)
        ctx["last_question"] = {"intent": intent, "slots": dict(asked)}
        self._remember(ctx, {})

    @staticmethod
    def _remember(ctx: dict, slots: dict[str, Any]) -> None:
        """Slots filled by an answer belong to the question; every slot value goes into
        `slot_memory` (most recent last), from which references carry them over."""
        last = ctx.get("last_question")
        if isinstance(last, dict) and slots:
            ctx["last_question"] = {"intent": last.get("intent"), "slots": {**(last.get("slots") or {}), **slots}}
        memory = dict(ctx.get("slot_memory") or {}) if isinstance(ctx.get("slot_memory"), dict) else {}
        current = slots or (last.get("slots") if isinstance(last, dict) else {}) or {}
        for key, value in current.items():
            memory.pop(key, None)
            memory[key] = value
        ctx["slot_memory"] = memory

    def _follow_up_of(self, rules: m.FollowUp, result: NluResult, slots: dict[str, str],
                      ctx: dict) -> tuple[str, dict[str, Any]] | None:
        """(the previous question's intent, its slots changed by this turn's) when the turn
        brings only slots that question can take ("and in Paris?"), else None."""
        last = ctx.get("last_question")
        if not slots or not isinstance(last, dict):
            return None
        previous = last.get("intent")
        if not self._is_question(previous) or not set(slots) <= rules.slots_for(previous):
            return None
        if not _only_slots(result, slots):
            return None  # a word of its own: a new question (or none), not a follow-up
        # "jeans with the lowest price" is all slots too, but a question the NLU reads in
        # itself; "and the headphones?" / "what about jeans?" say that they follow up.
        understood = (result.intent in self.flows.intent_transitions and result.intent != previous
                      and self._is_question(result.intent) and result.confidence >= NEW_QUESTION_CONFIDENCE)
        if understood and not set(result.tokens or ()) & m.FOLLOW_UP_CUES:
            return None
        asked = dict(last.get("slots") or {})
        for group in rules.alternatives:
            if group & set(slots):
                for key in group - set(slots):
                    asked.pop(key, None)
        asked.update(slots)
        return previous, asked

    def _fulfill(self, st: m.State, ctx: dict, turn: _Turn) -> str | None:
        provider = self.providers[st.type]
        try:
            updates = provider.fulfill(MappingProxyType(ctx))
        except FulfillmentError as e:
            log.warning("fulfillment %s failed: %s", st.type, e.detail)
            ctx[provider.status_key] = e.apology
            ctx["fulfillment_error"] = e.detail
            turn.error = f"{st.type}: {e.detail}"
            return "error"
        except Exception as e:  # noqa: BLE001 - a provider bug must not end the conversation
            log.exception("fulfillment %s raised", st.type)
            ctx[provider.status_key] = FALLBACK_PROVIDER
            ctx["fulfillment_error"] = f"{e.__class__.__name__}: {e}"
            turn.error = f"{st.type}: {e.__class__.__name__}: {e}"
            return "error"
        ctx.pop("fulfillment_error", None)
        for key, value in (updates or {}).items():
            ctx[str(key)] = value
        return None


def _mentions(tokens: list[str], phrases) -> bool:
    """Does any phrase (a tuple of tokens) occur in `tokens`?"""
    for phrase in phrases:
        n = len(phrase)
        if n and any(tuple(tokens[i:i + n]) == phrase for i in range(len(tokens) - n + 1)):
            return True
    return False


def _only_slots(result: NluResult, slots: dict[str, str]) -> bool:
    """Is the utterance nothing but slots and follow-up words ("and what about in Paris?")?"""
    tokens = list(result.tokens or [])
    tags = list(result.tags) if len(result.tags) == len(tokens) else labels.tags_from_slots(tokens, slots)
    for token, tag in zip(tokens, tags):
        if tag != labels.OUTSIDE and labels.SLOT_TYPE_TO_CONTEXT_KEY.get(tag[2:]) in slots:
            continue
        if token not in m.FOLLOW_UP_WORDS:
            return False
    return True


def _words_as_written(text: str, nlu: NluResult | None) -> tuple[list[str], list[str]]:
    """The archived tokens and tags: the user's own words ("sf", "tmrw"), with the tags the
    NLU gave their normalised spelling ("san francisco", "tomorrow"), so that a reviewed turn
    trains on what people type."""
    written = labels.tokenize(text)
    if nlu is None:
        return written, []
    tokens, tags = list(nlu.tokens), list(nlu.tags)
    if len(tags) != len(tokens):
        return tokens, []
    if tokens != written:
        normalized, origin = normalize_words(written)
        if normalized == tokens:
            return written, project_tags(len(written), origin, tags)
    return tokens, tags
