"""The assistant as channels see it: `reply(session_id, text) -> Reply`.

Terminal chat, the dashboard's Assistant page and the voice path all talk to this facade;
it builds the engine from the settings (flows, NLU backend, store, fulfillment providers)
once. Voice plugs in around it: ASR text in (`reply(..., asr_confidence=, channel="voice")`,
the confidence is archived with the turn), `Reply.messages` out to TTS, each after its
`delay_s`.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import Engine

from callsense.core.settings import Settings
from callsense.dialog.engine import DialogEngine, Message, Reply
from callsense.dialog.flows import RETAIL_ASSISTANT_DIR, FlowSet, load_flows
from callsense.dialog.fulfillment.base import FulfillmentResources
from callsense.dialog.nlu.base import NluBackend, NluUnavailable, create_nlu
from callsense.core.registry import UnknownBackend

log = logging.getLogger("callsense.dialog")

__all__ = ["Assistant", "Message", "Reply", "build_nlu", "flows_dir"]


def flows_dir(settings: Settings) -> Path:
    return Path(settings.dialog.flows_dir) if settings.dialog.flows_dir else RETAIL_ASSISTANT_DIR


def build_nlu(settings: Settings, notice: Callable[[str], None] | None = None,
              name: str | None = None) -> NluBackend:
    """The configured NLU backend. The default `embedded` backend falls back to the
    rule-based `keywords` backend (with a one-line notice) while it is not installed or
    has no trained model; an explicitly chosen other backend fails loudly."""
    chosen = name or settings.dialog.nlu_backend
    if name:
        settings = settings.model_copy(update={"nlu_backend": name})
    try:
        return create_nlu(settings)
    except (ImportError, UnknownBackend, NluUnavailable, FileNotFoundError, OSError) as e:
        if chosen != "embedded":
            raise
        from callsense.dialog.nlu.keywords import KeywordNlu

        reason = f"{e.__class__.__name__}: {e}".splitlines()[0][:160]
        (notice or log.warning)(f"NLU backend 'embedded' is not available ({reason}); using the rule-based "
                                f"'keywords' backend instead")
        return KeywordNlu(settings)


class Assistant:
    """One assistant, many sessions. Thread-safe."""

    def __init__(self, settings: Settings | None = None, *, flows: FlowSet | Path | str | None = None,
                 nlu: NluBackend | None = None, db: Engine | None = None, seed: int | None = None,
                 today: Callable[[], date] | None = None, notice: Callable[[str], None] | None = None):
        from callsense.store.db import make_engine

        self.settings = settings or Settings()
        if not isinstance(flows, FlowSet):
            flows = load_flows(flows or flows_dir(self.settings)).require()  # refuses to start on errors
        self.flows = flows
        self.nlu = nlu or build_nlu(self.settings, notice)
        self.db = db or make_engine(self.settings.resolved_database_url)
        resources = FulfillmentResources(self.settings, self.db, today or date.today)
        self.engine = DialogEngine(flows, self.nlu, db=self.db, settings=self.settings, seed=seed,
                                   fulfillment=resources)

    def start(self, session_id: str) -> Reply:
        """The greeting of a new conversation (empty for one already going)."""
        return self.engine.start(session_id)

    def reply(self, session_id: str, text: str, *, asr_confidence: float | None = None,
              channel: str = "text") -> Reply:
        return self.engine.reply(session_id, text, asr_confidence=asr_confidence, channel=channel)

    def reset(self, session_id: str) -> None:
        """Forget a conversation (its archived turns stay)."""
        self.engine.reset(session_id)

    def close(self) -> None:
        self.engine.close()
