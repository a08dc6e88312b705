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

from callsense.config import Settings
from callsense.dialog.flows import model as m
from callsense.dialog.fulfillment.base import FulfillmentError, FulfillmentProvider, FulfillmentResources, fulfillment_providers
from callsense.dialog.nlu import labels
from callsense.dialog.nlu.base import NLU_ERROR, NO_MATCH, NluBackend, NluResult, NluUnavailable
from callsense.dialog.sessions import SessionState, SessionStore
from callsense.dialog.templates import render

log = logging.getLogger("callsense.dialog")

FALLBACK_NOT_UNDERSTOOD = "Sorry, I didn't understand that. You can ask me about the weather, stores and prices."
FALLBACK_NLU_DOWN = "Sorry, I can't understand requests right now. Please try again in a moment."
FALLBACK_ENGINE_FAULT = "Sorry, something went wrong on my side. Let's start over: what can I do for you?"
FALLBACK_PROVIDER = "Sorry, I can't get that information right now. Please try again in a moment."
FALLBACK_EMPTY = "Sorry, I have no answer to that."
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


@dataclass
class _Turn:
    messages: list[Message] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    nlu: NluResult | None = None
    intent: str | None = None
    error: str | None = None


class _LoopGuard(Exception):
    pass


def clean_text(text: object, limit: int) -> str:
    """User input as the engine handles it: a string, control characters removed, cut to `limit`."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) > limit:
        text = text[:limit]
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
        self.settings = settings or Settings()
        self.sessions = SessionStore(db)
        self.seed = seed if seed is not None else self.settings.dialog_seed
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
        """One user turn. A new session is started first (its greeting is part of the reply)."""
        return self._turn(session_id, clean_text(text, self.settings.dialog_max_input_chars),
                          asr_confidence=asr_confidence, channel=channel)

    def reset(self, session_id: str) -> None:
        with self._lock(session_id):
            self.sessions.delete(session_id)

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()

    # ---- a turn ------------------------------------------------------------------

    def _lock(self, session_id: str) -> threading.Lock:
        return self._locks[hash(session_id) % len(self._locks)]

    def _turn(self, session_id: str, text: str | None, *, asr_confidence: float | None = None,
              channel: str = "text") -> Reply:
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
            turn = _Turn()
            try:
                self._advance(session, text, turn)
            except Exception as e:  # noqa: BLE001 - a conversation must survive an engine fault
                if not isinstance(e, _LoopGuard):
                    log.exception("dialog engine fault in session %s at state %s", session_id, session.state)
                turn.error = f"engine: {e}"
                turn.messages.append(Message(FALLBACK_ENGINE_FAULT))
                session.state = self._fallback_input or self.flows.start_state
            if not any(msg.text for msg in turn.messages) and text is not None:
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
        )

    def _archive_record(self, session: SessionState, reply: Reply, text: str, turn: _Turn,
                        asr_confidence: float | None, channel: str, latency_ms: float) -> dict[str, Any]:
        now = self.clock()
        nlu = turn.nlu
        return dict(
            session_id=session.session_id, turn=session.turns, at=now,
            day=datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%d"),
            channel=channel, text=text, asr_confidence=asr_confidence, intent=turn.intent,
            confidence=nlu.confidence if nlu else None,
            slots_json=json.dumps(dict(nlu.slots) if nlu else {}, ensure_ascii=False),
            tokens=" ".join(nlu.tokens) if nlu else " ".join(labels.tokenize(text)),
            tags=" ".join(nlu.tags) if nlu and len(nlu.tags) == len(nlu.tokens) else "",
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
        for step in range(self.settings.dialog_max_steps):
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
                for key, value in (st.properties.get("update_keys") or {}).items():
                    if isinstance(value, str):
                        value, missing = render(value, ctx)
                        turn.missing += missing
                    ctx[str(key)] = value
            elif st.type == m.CONDITIONAL_EXISTS:
                key = m.template_key(st.properties.get("key"))
                value = ctx.get(key) if key else None
                outcome = "exists" if value not in (None, "", [], {}) else "notexists"
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
        raise _LoopGuard(f"more than {self.settings.dialog_max_steps} states in one turn (a loop in the flows?)")

    def _say(self, st: m.State, template: str, ctx: dict, turn: _Turn) -> None:
        text, missing = render(template, ctx)
        if missing:
            turn.missing += missing
            log.debug("state %s: template keys not set: %s", st.name, ", ".join(missing))
        turn.messages.append(Message(text.strip(), st.delay, st.name))

    def _input(self, st: m.State, text: str, ctx: dict, turn: _Turn) -> str:
        """Run the NLU on the user's text; return the outcome (match/notmatch), 'route:STATE'
        for an intent transition, or 'stay' (said a built-in apology, wait again)."""
        routes = self.flows.intent_transitions
        ctx["user_text"] = text
        try:
            result = self.nlu.parse(text)
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
        turn.nlu = result
        intent = result.intent if result.confidence >= self.settings.nlu_min_confidence else NO_MATCH
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
                if value is None or other_flow:
                    self._new_question(ctx, intent, result.confidence, slots)
                    return f"route:{target}"
            if value is None and not require and text:
                value = clean_text(text, MAX_SLOT_CHARS)
            if value:
                ctx.update(slots)
                ctx[slot] = value
                return "match"
            return "notmatch"

        self._new_question(ctx, intent, result.confidence, slots)
        target = routes.get(intent) or routes.get(NO_MATCH)
        if target is None:
            turn.messages.append(Message(FALLBACK_NOT_UNDERSTOOD, 0.0, st.name))
            return "stay"
        return f"route:{target}"

    @staticmethod
    def _new_question(ctx: dict, intent: str, confidence: float, slots: dict[str, str]) -> None:
        for key in labels.TURN_SCOPED_KEYS:
            ctx.pop(key, None)
        ctx.pop("fulfillment_error", None)
        ctx.update(slots)
        ctx["intent"] = ctx["nlu_intent"] = intent
        ctx["nlu_confidence"] = round(float(confidence), 4)

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
