"""The transcribe stage: utterance batches in, one transcribed utterance (with sentences
and word times in call time) out per utterance.

Engines that pay for a fixed window whatever its content (Whisper encodes 30 s per pass)
get several waiting live utterances packed into one pass (recorded calls arrive already
packed per channel by the segment stage). That is what keeps many live calls from
queueing behind each other: each live utterance arrives alone, and one pass per utterance
would cost a full window each. Batches of different calls are separated by a longer
silence than utterances of one channel, and a word whose middle falls in that silence is
dropped rather than given to either side, so one caller's words never land in another
call's transcript.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from callsense.asr.base import AsrEngine, RecognizedWord
from callsense.store.blobs import BlobStore
from callsense.audio.loudness import span_dbfs
from callsense.audio.pcm import s16le_to_float
from callsense.audio.resample import TARGET_RATE
from callsense.core.events import EventModel, PiiSpan, Sentence, TranscribedUtterance, UtteranceBatch, UtteranceSpan, Word
from callsense.ingest.stages.interim import FinalsFirst
from callsense.nlp.pii import PiiRedactor, redact_timed_words
from callsense.nlp.sentences import join_words, split_sentences

# Silence between batches of different calls (or channels) packed into one pass.
BETWEEN_BATCHES_S = 1.0


def utterance_sentences(words: Sequence[RecognizedWord]) -> list[Sentence]:
    """An utterance's words (in call time) as its sentences."""
    return [
        Sentence(index=k, text=join_words(ws), start=ws[0].start, end=ws[-1].end,
                 words=[Word(text=w.text.strip(), start=w.start, end=w.end, probability=w.probability) for w in ws])
        for k, ws in enumerate(split_sentences(words))
    ]


def with_loudness(s: Sentence, audio: np.ndarray, u: UtteranceSpan) -> Sentence:
    """The sentence with the level of its audio (dBFS): `audio` is the batch's, where the
    utterance `u` begins at u.offset; sentence times are call times."""
    shift = u.offset - u.start
    level = span_dbfs(audio, TARGET_RATE, s.start + shift, s.end + shift)
    return s.model_copy(update={"loudness_dbfs": level}) if level is not None else s


def _distance(lo: float, hi: float, t: float) -> float:
    """How far time t lies outside [lo, hi] (0 inside)."""
    return 0.0 if lo <= t <= hi else min(abs(t - lo), abs(t - hi))


def _owner(spans: Sequence[UtteranceSpan], t: float) -> int:
    """Index into spans of the utterance that holds time t of the packed audio (the nearest one)."""
    return min(range(len(spans)), key=lambda i: _distance(spans[i].offset, spans[i].offset + spans[i].end - spans[i].start, t))


@dataclass
class _Placed:
    """One batch's audio inside a packed pass: it starts `at` seconds into the pass."""

    batch: UtteranceBatch
    audio: np.ndarray
    at: float

    @property
    def end(self) -> float:
        return self.at + self.audio.size / TARGET_RATE


class UtteranceTranscriber:
    name = "transcribe"
    inputs = ("utterances",)

    def __init__(self, engine: AsrEngine, blobs: BlobStore, pack_window_s: float | None = None,
                 pii_redaction: str = "mask", loudness: bool = True,
                 finals_first: FinalsFirst | None = None):
        self.engine = engine
        self.blobs = blobs
        self.loudness = loudness  # each sentence's dBFS (a call characteristic; settings.pipeline.sentence_loudness)
        # Tells the segment stage's interim thread (same process) to start nothing while a
        # final utterance is being recognized (ingest/stages/interim.py).
        self.finals_first = finals_first
        # PII leaves this stage masked (or removed): nothing downstream sees it in clear.
        self.redactor = PiiRedactor(pii_redaction)
        # Pack only for engines whose cost per pass does not shrink with shorter audio.
        fixed = getattr(engine, "fixed_window_s", None)
        self.window_s = min(pack_window_s or fixed, fixed) if fixed else None

    def units(self, events: Sequence[EventModel]) -> list[list[EventModel]]:
        """Units of work for the transport (`ingest.stage.stage_units`): with an engine whose
        cost follows the audio each utterance batch is its own unit, so its result goes on
        as soon as it is recognized instead of after every other utterance of the poll; a
        fixed-window engine packs the whole poll (one unit)."""
        if self.window_s is not None:
            return [list(events)]
        return [[ev] for ev in events]

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        # A window withdrawn after its call was done and its PII silenced (store stage) is a
        # redelivery whose utterances are stored already: nothing to do.
        batches = [ev for ev in events if isinstance(ev, UtteranceBatch)
                   and not (ev.audio.blob and self.blobs.withdrawn_for(ev.audio.blob, ev.call_id))]
        out: list[EventModel] = []
        to_recognize = []
        for ev in batches:
            if not self._heard_already(ev):
                to_recognize.append(ev)
                continue
            words = [RecognizedWord(w.text, w.start, w.end, w.probability) for w in ev.recognized]
            out.append(self._utterance(ev, ev.utterances[0], words, s16le_to_float(self.blobs.get(ev.audio))))
        for group in self._groups(to_recognize):
            with self.finals_first.final() if self.finals_first is not None else nullcontext():
                out.extend(self._transcribe_group(group))
        return out

    def _heard_already(self, ev: UtteranceBatch) -> bool:
        """A live utterance the segment stage recognized with this stage's model already."""
        return ev.recognized is not None and ev.recognized_by == self.engine.model_id and len(ev.utterances) == 1

    def _groups(self, batches: Sequence[UtteranceBatch]) -> list[list[_Placed]]:
        groups: list[list[_Placed]] = []
        current: list[_Placed] = []
        for ev in batches:
            audio = s16le_to_float(self.blobs.get(ev.audio))
            at = current[-1].end + BETWEEN_BATCHES_S if current else 0.0
            # Recorded calls come already packed per channel; live utterances come one by one.
            packable = (self.window_s is not None and ev.live_started_at is not None
                        and bool(current) and current[-1].batch.live_started_at is not None)
            if current and (not packable or at + audio.size / TARGET_RATE > self.window_s):
                groups.append(current)
                current, at = [], 0.0
            current.append(_Placed(ev, audio, at))
        if current:
            groups.append(current)
        return groups

    def _transcribe_group(self, group: list[_Placed]) -> list[TranscribedUtterance]:
        if len(group) == 1:
            packed = group[0].audio
        else:
            packed = np.zeros(int(round(group[-1].end * TARGET_RATE)), np.float32)
            for p in group:
                start = int(round(p.at * TARGET_RATE))
                packed[start:start + p.audio.size] = p.audio
        words_of = {id(p): [[] for _ in p.batch.utterances] for p in group}
        live = all(p.batch.live_started_at is not None for p in group)
        for seg in (self.engine.transcribe_live(packed) if live else self.engine.transcribe(packed)):
            for w in seg.timed_words():
                mid = (w.start + w.end) / 2
                place = self._place_of(group, mid)
                if place is None:
                    continue  # in the silence between two calls: belongs to neither
                ev = place.batch
                i = _owner(ev.utterances, mid - place.at)
                u = ev.utterances[i]
                shift = u.start - u.offset - place.at
                # Whisper stretches a last word over the silence after it; the utterance ends where its audio does.
                start = min(max(w.start + shift, u.start), u.end)
                end = min(max(w.end + shift, start), u.end)
                words_of[id(place)][i].append(RecognizedWord(w.text, start, end, w.probability))
        results = []
        for p in group:
            for i, u in enumerate(p.batch.utterances):
                results.append(self._utterance(p.batch, u, words_of[id(p)][i], p.audio))
        return results

    @staticmethod
    def _place_of(group: list[_Placed], t: float) -> _Placed | None:
        dist = [_distance(p.at, p.end, t) for p in group]
        best = min(range(len(group)), key=dist.__getitem__)
        # Word times drift a little past the audio they came from; more than that is the gap.
        if len(group) > 1 and dist[best] > 0.3 * BETWEEN_BATCHES_S:
            return None
        return group[best]

    def _utterance(self, ev: UtteranceBatch, u: UtteranceSpan, words: list[RecognizedWord],
                   audio: np.ndarray | None = None) -> TranscribedUtterance:
        words, pii = redact_timed_words(words, self.redactor)  # before any text leaves the stage
        sentences = utterance_sentences(words)
        if audio is not None and self.loudness:
            sentences = [with_loudness(s, audio, u) for s in sentences]
        conf = sum(w.probability for w in words) / len(words) if words else None
        return TranscribedUtterance(
            call_id=ev.call_id, channel=ev.channel, speaker=ev.speaker, agent_id=ev.agent_id, index=u.index,
            start=u.start, end=u.end, text=join_words(words), confidence=conf,
            asr_model=self.engine.model_id, sentences=sentences, live_started_at=ev.live_started_at,
            pii_spans=[PiiSpan(kind=p.kind, start=p.start, end=p.end) for p in pii], window_blob=ev.audio.blob,
        )
