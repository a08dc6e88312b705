"""What a pipeline stage is, where its events go, and how one bad event is isolated.

A stage is a plain object with `handle_batch(events) -> events`; transports only move
events between stages (in-process queues or Kafka topics, same routing table).
"""

from __future__ import annotations

import logging
import traceback
from typing import Protocol, Sequence

from callsense.core.errors import BadInput, TransientError
from callsense.core.events import DeadLetter, EventModel

log = logging.getLogger("callsense.pipeline")

# Topic (without prefix) for each event kind.
TOPIC_OF_KIND = {
    "call_recorded": "calls",
    "call_chunk": "calls",
    "utterance_batch": "utterances",
    "transcribed": "transcripts",
    "scored": "results",
    "call_opened": "results",
    "call_segmented": "results",
    "dead_letter": "dead-letters",
    # Live calls' interim text: read by the dashboard's Live page (ingest/interim.py), no stage.
    "interim": "interim",
}
STAGE_ORDER = ("segment", "transcribe", "sentiment", "store")
# Live calls streamed to Riva (CALLSENSE_LIVE_ASR=riva-streaming): consumes `calls` beside
# the segment stage, produces what segment + transcribe produce for a live call.
LIVE_TRANSCRIBE = "live-transcribe"
STAGE_NAMES = ("segment", LIVE_TRANSCRIBE, "transcribe", "sentiment", "store")


def pipeline_stage_names(live_asr: str) -> list[str]:
    """Every stage of a complete pipeline for this live_asr setting, in data-flow order."""
    return list(STAGE_NAMES) if live_asr == "riva-streaming" else list(STAGE_ORDER)


class Stage(Protocol):
    name: str
    inputs: tuple[str, ...]

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]: ...


def dead_letter(stage: str, event: EventModel | None, reason: str, detail: str = "", fatal: bool = True) -> DeadLetter:
    return DeadLetter(stage=stage, call_id=getattr(event, "call_id", None), reason=reason, detail=detail, fatal=fatal)


def stage_units(stage: Stage, events: Sequence[EventModel]) -> list[Sequence[EventModel]]:
    """The batch cut into the stage's units of work, in order (`stage.units(events)` where the
    stage defines it; else the whole batch is one unit). A transport hands each unit's outputs
    on as soon as the unit is done, so a stage whose events are independent (one live
    utterance each) does not hold the first result back until the last one is ready."""
    units = getattr(stage, "units", None)
    return [u for u in units(events) if u] if units is not None else [events]


def run_safely(stage: Stage, events: Sequence[EventModel]) -> list[EventModel]:
    """Run a batch; if it fails, run events one by one so only the bad ones are dead-lettered.
    Transient failures propagate: the transport retries them without committing."""
    try:
        return stage.handle_batch(events)
    except TransientError:
        raise
    except Exception:
        if len(events) == 1:
            return [_as_dead_letter(stage, events[0])]
    out: list[EventModel] = []
    for ev in events:
        try:
            out.extend(stage.handle_batch([ev]))
        except TransientError:
            raise
        except Exception:
            out.append(_as_dead_letter(stage, ev))
    return out


def _as_dead_letter(stage: Stage, ev: EventModel) -> DeadLetter:
    import sys

    exc = sys.exc_info()[1]
    call = getattr(ev, "call_id", None)
    if isinstance(exc, BadInput):
        reason = str(exc)
        detail = ""
    else:
        reason = f"internal error in {stage.name}: {exc.__class__.__name__}: {exc}"
        detail = traceback.format_exc(limit=8)
    # A recording's file name says more to a person than its call id.
    source = getattr(ev, "source_name", None)
    if source and ev.kind == "call_recorded" and source not in reason:
        reason = f"{source}: {reason}"
    log.warning("dead-lettered %s event of call %s at %s: %s", getattr(ev, "kind", "?"), call, stage.name, reason)
    return dead_letter(stage.name, ev, reason, detail)
