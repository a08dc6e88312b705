"""The transcribe stage: utterance batches in, one transcribed utterance (with sentences
and word times in call time) out per utterance."""

from __future__ import annotations

from typing import Sequence

from callsense.asr.base import AsrEngine, RecognizedWord
from callsense.ingest.blobs import BlobStore
from callsense.ingest.convert import s16le_to_float
from callsense.ingest.events import EventModel, Sentence, TranscribedUtterance, UtteranceBatch, UtteranceSpan, Word
from callsense.nlp.sentences import join_words, split_sentences


def _owner(spans: Sequence[UtteranceSpan], t: float) -> int:
    """Index into spans of the utterance that holds time t of the packed audio."""
    best, best_d = 0, float("inf")
    for i, u in enumerate(spans):
        lo, hi = u.offset, u.offset + (u.end - u.start)
        d = 0.0 if lo <= t <= hi else min(abs(t - lo), abs(t - hi))
        if d < best_d:
            best, best_d = i, d
    return best


class UtteranceTranscriber:
    name = "transcribe"
    inputs = ("utterances",)

    def __init__(self, engine: AsrEngine, blobs: BlobStore):
        self.engine = engine
        self.blobs = blobs

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        out: list[EventModel] = []
        for ev in events:
            if isinstance(ev, UtteranceBatch):
                out.extend(self.transcribe_batch(ev))
        return out

    def transcribe_batch(self, ev: UtteranceBatch) -> list[TranscribedUtterance]:
        audio = s16le_to_float(self.blobs.get(ev.audio))
        words_of: list[list[RecognizedWord]] = [[] for _ in ev.utterances]
        confidences: list[list[float]] = [[] for _ in ev.utterances]
        for seg in self.engine.transcribe(audio):
            words = seg.words or [RecognizedWord(seg.text, seg.start, seg.end, seg.confidence or 1.0)]
            for w in words:
                i = _owner(ev.utterances, (w.start + w.end) / 2)
                u = ev.utterances[i]
                shift = u.start - u.offset
                words_of[i].append(RecognizedWord(w.text, w.start + shift, w.end + shift, w.probability))
                confidences[i].append(w.probability)
        results = []
        for i, u in enumerate(ev.utterances):
            sentences = [
                Sentence(index=k, text=join_words(ws), start=ws[0].start, end=ws[-1].end,
                         words=[Word(text=w.text.strip(), start=w.start, end=w.end, probability=w.probability) for w in ws])
                for k, ws in enumerate(split_sentences(words_of[i]))
            ]
            conf = sum(confidences[i]) / len(confidences[i]) if confidences[i] else None
            results.append(TranscribedUtterance(
                call_id=ev.call_id, channel=ev.channel, speaker=ev.speaker, agent_id=ev.agent_id, index=u.index,
                start=u.start, end=u.end, text=join_words(words_of[i]), confidence=conf,
                asr_model=self.engine.model_id, sentences=sentences, live_started_at=ev.live_started_at,
            ))
        return results
