"""Pipeline results -> the store's typed rows (the one place that knows both)."""

from __future__ import annotations

from typing import Iterable

from callsense.core.events import CallOpened, CallSegmented, DeadLetter, EventModel, TranscribedUtterance
from callsense.store.rows import (
    CallOpening, CallSegmentation, FailureRow, ResultBatch, SentenceRow, UtteranceRow,
)


def result_rows(events: Iterable[EventModel]) -> ResultBatch:
    batch = ResultBatch()
    for ev in events:
        if isinstance(ev, CallOpened):
            batch.opened.append(CallOpening(
                call_id=ev.call_id, source_name=ev.source_name, mode=ev.mode, channels=ev.channels,
                speakers=tuple(ev.speakers), started_at=ev.started_at, agent_id=ev.agent_id, audio_blob=ev.audio_blob))
        elif isinstance(ev, CallSegmented):
            batch.segmented.append(CallSegmentation(
                call_id=ev.call_id, utterances_expected=sum(ev.utterances_per_channel.values()), duration_s=ev.duration_s))
        elif isinstance(ev, TranscribedUtterance):
            batch.utterances.append(UtteranceRow(
                call_id=ev.call_id, channel=ev.channel, index=ev.index, speaker=ev.speaker, start=ev.start, end=ev.end,
                text=ev.text, asr_model=ev.asr_model, agent_id=ev.agent_id, confidence=ev.confidence,
                live_started_at=ev.live_started_at,
                sentences=tuple(_sentence_row(s) for s in ev.sentences),
                pii_spans=tuple((p.kind, p.start, p.end) for p in ev.pii_spans), window_blob=ev.window_blob))
        elif isinstance(ev, DeadLetter):
            batch.failures.append(FailureRow(stage=ev.stage, reason=ev.reason, at=ev.at, call_id=ev.call_id,
                                             detail=ev.detail, fatal=ev.fatal))
    return batch


def _sentence_row(s) -> SentenceRow:
    if s.sentiment is None:
        return SentenceRow(index=s.index, text=s.text, start=s.start, end=s.end, loudness_dbfs=s.loudness_dbfs)
    return SentenceRow(index=s.index, text=s.text, start=s.start, end=s.end, sentiment=s.sentiment.label,
                       confidence=s.sentiment.confidence, model=s.sentiment.model, loudness_dbfs=s.loudness_dbfs)
