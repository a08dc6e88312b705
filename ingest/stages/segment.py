"""The segment stage: a call's audio in, utterance batches per channel out.

Recorded calls are decoded whole and their utterances packed into ASR windows. Live calls
arrive as ordered chunks; each channel runs the same endpointer incrementally and an
utterance is sent on as soon as its end is detected. With `live_asr=riva-streaming` live
calls are left to the live-transcribe stage (`ingest/stages/live_transcribe.py`).

Interim text (`InterimTranscript`, topic `<prefix>.interim`): while a live utterance is open,
at most every `live_interim_ms` of new audio its audio so far is recognized, only when new
speech arrived since the channel's last interim, only for engines whose cost follows the
audio (`fixed_window_s is None`; Whisper's 30 s pass would not keep up), and never when the
chunk being handled is already more than `live_interim_ms` behind real time (a backlog, or a
replay after a crash). Recognition runs on a low-priority thread of its own
(`ingest/stages/interim.py`) that drops what it cannot do in time, so finals never wait for
an interim. Interims are best effort and not stored: the final utterance replaces them.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from callsense.asr.base import RecognizedWord
from callsense.core.settings import Settings
from callsense.store.blobs import BlobStore
from callsense.audio.decode import AudioLimits, collapse_dual_mono, decode_audio
from callsense.audio.diarize import diarize
from callsense.audio.g711 import pcm_to_int16
from callsense.audio.pcm import float_to_s16le
from callsense.audio.resample import TARGET_RATE, StreamResampler
from callsense.core.errors import BadInput
from callsense.core.events import (
    CallChunk, CallOpened, CallRecorded, CallSegmented, DeadLetter, EventModel, UtteranceBatch, UtteranceSpan, Word,
)
from callsense.ingest.reorder import ChunkReorderBuffer, MissingChunks
from callsense.ingest.stages.interim import FinalsFirst, InterimRequest, InterimRunner, partial_redactor
from callsense.ingest.stage import dead_letter
from callsense.nlp.pii import PiiRedactor, redact_words
from callsense.nlp.sentences import ends_sentence
from callsense.audio.vad import (
    EndpointerOptions, SileroModel, Span, SpeechProbabilityStream, UtteranceEndpointer, speech_spans,
)

log = logging.getLogger("callsense.segment")

# Silence put between packed utterances so the recognizer does not run words together.
GAP_S = 0.3


def missing_chunks_letter(stage: str, ch: CallChunk, gap: MissingChunks, window: int) -> DeadLetter:
    """The non-fatal dead letter of a live call's gap (the stage fills it with silence)."""
    return dead_letter(stage, ch, f"live call {ch.call_id}: chunks {gap.first}..{gap.last} never arrived "
                                  f"within a window of {window}; filled with {gap.count} chunks of silence", fatal=False)


def endpointer_options(settings: Settings, live: bool = False) -> EndpointerOptions:
    return EndpointerOptions(
        threshold=settings.pipeline.vad_threshold,
        min_silence_ms=settings.pipeline.live_min_silence_ms if live else settings.pipeline.vad_min_silence_ms,
        speech_pad_ms=settings.pipeline.vad_speech_pad_ms,
        max_utterance_s=settings.pipeline.vad_max_utterance_s,
    )


@dataclass
class _LiveChannel:
    resampler: StreamResampler
    probs: SpeechProbabilityStream
    endpointer: UtteranceEndpointer
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    base: int = 0  # sample index of audio[0] from the start of the call
    count: int = 0
    speech_since_interim: bool = False  # a voiced frame arrived since the last interim
    interim_at: int = 0  # call sample position of the last interim
    interim_seq: int = 0
    checked_pause: int | None = None  # start of the last pause checked for a sentence end
    # What the sentence-pause check heard: (where the pause began, the words up to it in call
    # time). Still valid when the utterance then closes at that same pause (no speech since).
    heard: tuple[int, list[RecognizedWord]] | None = None


@dataclass
class _LiveCall:
    call_id: str
    channels: list[_LiveChannel]
    speakers: list[str]
    agent_id: str | None
    stream_started_at: float
    chunk_samples: int = 1600


class CallSegmenter:
    name = "segment"
    inputs = ("calls",)

    def __init__(self, settings: Settings, blobs: BlobStore, vad: SileroModel | None = None,
                 interim_engine: Callable[[], object | None] | None = None, interim_background: bool = True,
                 finals_first: FinalsFirst | None = None, pause_engine: Callable[[], object | None] | None = None):
        self.settings = settings
        self.blobs = blobs
        self.vad = vad or SileroModel()
        self._live: dict[str, _LiveCall] = {}
        self._order = ChunkReorderBuffer(settings.pipeline.live_reorder_window, self.name)
        # With live_asr=riva-streaming the live-transcribe stage owns live calls.
        self.segments_live_calls = settings.pipeline.live_asr == "vad"
        self.limits = AudioLimits.from_settings(settings)
        self._refused: dict[str, None] = {}  # live calls refused at their first chunk (insertion ordered, bounded)
        # What leaves this stage as text (interims, words heard at a pause) is PII-masked here.
        self._redactor = PiiRedactor(settings.pipeline.pii_redaction)
        # Interim text: a factory of the live ASR engine (None: no interims), built at the first need.
        self._interim_every = settings.pipeline.live_interim_ms * TARGET_RATE // 1000
        self.interims = (InterimRunner(interim_engine, background=interim_background,
                                       max_wait_s=max(0.3, 2 * settings.pipeline.live_interim_ms / 1000),
                                       finals_first=finals_first, redact=partial_redactor(self._redactor))
                         if interim_engine is not None and self._interim_every > 0 else None)
        self.clock = time.time  # wall clock: how far behind real time a live chunk is handled
        # Sentence pauses: a pause this long (samples) inside an open utterance is checked for a
        # sentence end with the live engine (`pause_engine`: the transcribe stage's own in a
        # worker running both, so what it heard is the final transcript; else one of its own).
        self._sentence_pause = settings.pipeline.live_sentence_pause_ms * TARGET_RATE // 1000
        if self._sentence_pause >= settings.pipeline.live_min_silence_ms * TARGET_RATE // 1000:
            self._sentence_pause = 0  # the endpointer closes there anyway
        self._pause_engine_factory = pause_engine or interim_engine
        # A pause check may give an utterance its final words: interims wait for it as for a final.
        self._finals_first = finals_first
        self._pause_engine = None
        if self._sentence_pause and self.segments_live_calls and self._pause_engine_factory is not None:
            self._pause_engine = self._pause_engine_factory()  # now, not in the middle of the first live call
        self.sentence_closes = 0

    def open_calls(self) -> set[str]:
        """Live calls whose state lives in memory: their chunks must be replayed after a crash."""
        return self._order.open_calls()

    def units(self, events: Sequence[EventModel]) -> list[list[EventModel]]:
        """One event per unit of work (`ingest.stage.stage_units`): an utterance closed by the
        first chunk of a poll goes on before the other chunks of the poll are run through the
        VAD."""
        return [[ev] for ev in events]

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        out: list[EventModel] = []
        for ev in events:
            if isinstance(ev, CallRecorded):
                out.extend(self._recorded(ev))
            elif isinstance(ev, CallChunk) and self.segments_live_calls:
                out.extend(self._chunk(ev))
        if self.interims is not None:
            out.extend(self.interims.collect())
        return out

    # ---- recorded calls ------------------------------------------------------------

    def _recorded(self, ev: CallRecorded) -> list[EventModel]:
        if ev.audio.blob and self.blobs.withdrawn_for(ev.audio.blob, ev.call_id):
            # The call was stored in full and its recording redacted (store stage, pii_audio): a
            # redelivery after a crash. Its results are stored; segmenting it again is not needed.
            log.info("call %s: recording already stored and redacted; redelivered event skipped", ev.call_id)
            return []
        decoded = decode_audio(self.blobs.get(ev.audio), self.settings.pipeline.decoder, self.limits)
        channels = collapse_dual_mono(decoded.channels)
        opts = endpointer_options(self.settings)
        speech = self._speech_per_channel(channels, opts)
        n = len(speech)
        speakers = [self.settings.role_of_channel(c, n) for c in range(n)]
        out: list[EventModel] = [CallOpened(
            call_id=ev.call_id, source_name=ev.source_name, mode="recorded", channels=n,
            speakers=speakers, agent_id=ev.agent_id, started_at=ev.received_at, audio_blob=ev.audio.blob)]
        per_channel: dict[int, int] = {}
        for c, (audio, spans) in enumerate(speech):
            per_channel[c] = len(spans)
            out.extend(self._pack(ev, c, speakers[c], audio, spans))
        out.append(CallSegmented(call_id=ev.call_id, utterances_per_channel=per_channel, duration_s=decoded.duration_s))
        return out

    def _speech_per_channel(self, channels: np.ndarray, opts: EndpointerOptions) -> list[tuple[np.ndarray, list[Span]]]:
        """(audio, utterance spans) per channel. With `diarize_mono`, a mono call becomes two
        speakers' channels cut from the one track (channel 0: who speaks first); one with too
        little speech to tell two voices apart stays one channel, segmented as without diarization."""
        if channels.shape[0] == 1 and self.settings.pipeline.diarize_mono:
            found = diarize(channels[0], self.vad, opts)
            return [(channels[0], found.spans_of(k)) for k in range(found.speakers)]
        return [(channels[c], speech_spans(channels[c], self.vad, opts)) for c in range(channels.shape[0])]

    def _pack(self, ev: CallRecorded, channel: int, speaker: str, audio: np.ndarray, spans: list[Span]) -> list[UtteranceBatch]:
        window = self.settings.pipeline.asr_window_s * TARGET_RATE
        gap = np.zeros(int(GAP_S * TARGET_RATE), np.float32)
        batches: list[UtteranceBatch] = []
        pieces: list[np.ndarray] = []
        utts: list[UtteranceSpan] = []
        length = 0

        def flush():
            nonlocal pieces, utts, length
            if utts:
                pcm = float_to_s16le(np.concatenate(pieces))
                batches.append(UtteranceBatch(call_id=ev.call_id, channel=channel, speaker=speaker,
                                              agent_id=ev.agent_id, utterances=utts, audio=self.blobs.put(pcm)))
            pieces, utts, length = [], [], 0

        for i, sp in enumerate(spans):
            size = sp.end - sp.start
            if utts and length + gap.size + size > window:
                flush()
            if utts:
                pieces.append(gap)
                length += gap.size
            utts.append(UtteranceSpan(index=i, start=sp.start / TARGET_RATE, end=sp.end / TARGET_RATE, offset=length / TARGET_RATE))
            pieces.append(audio[sp.start:sp.end])
            length += size
        flush()
        return batches

    # ---- live calls ----------------------------------------------------------------

    def _chunk(self, ch: CallChunk) -> list[EventModel]:
        call = self._live.get(ch.call_id)
        out: list[EventModel] = []
        if call is None:
            if ch.seq and ch.call_id in self._refused:
                return out  # its first chunk was dead-lettered (and is again if redelivered); the rest is dropped
            if not self._order.starts_call(ch):
                return out
            call = self._open_live(ch)
            out.append(CallOpened(
                call_id=ch.call_id, source_name=ch.source_name, mode="live", channels=ch.channels,
                speakers=call.speakers, agent_id=ch.agent_id, started_at=ch.stream_started_at))
        for item in self._order.push(ch):
            if isinstance(item, MissingChunks):
                out.append(missing_chunks_letter(self.name, ch, item, self.settings.pipeline.live_reorder_window))
                for c, chan in enumerate(call.channels):
                    self._push_channel(call, chan, np.zeros(call.chunk_samples * item.count, np.float32), out, c)
                continue
            out.extend(self._feed(call, item))
            if item.final:
                out.extend(self._close_live(call))
        return out

    def _check_live_format(self, ch: CallChunk) -> None:
        try:
            self.limits.check(ch.sample_rate, ch.channels, None)
        except BadInput as e:
            self._refused[ch.call_id] = None
            while len(self._refused) > 10_000:
                self._refused.pop(next(iter(self._refused)))
            raise BadInput(f"live call {ch.call_id}: bad stream format ({ch.channels} channels at {ch.sample_rate} Hz): {e}") from None

    def _open_live(self, ch: CallChunk) -> _LiveCall:
        self._check_live_format(ch)
        opts = endpointer_options(self.settings, live=True)
        chans = [_LiveChannel(StreamResampler(ch.sample_rate), SpeechProbabilityStream(self.vad), UtteranceEndpointer(opts))
                 for _ in range(ch.channels)]
        speakers = [self.settings.role_of_channel(c, ch.channels) for c in range(ch.channels)]
        call = _LiveCall(ch.call_id, chans, speakers, ch.agent_id, ch.stream_started_at)
        self._live[ch.call_id] = call
        return call

    def _feed(self, call: _LiveCall, chunk: CallChunk) -> list[EventModel]:
        samples = pcm_to_int16(chunk.pcm, chunk.encoding)
        n_ch = len(call.channels)
        samples = samples[: samples.size - samples.size % n_ch].reshape(-1, n_ch)
        if samples.shape[0]:
            call.chunk_samples = int(round(samples.shape[0] * TARGET_RATE / chunk.sample_rate))
        out: list[EventModel] = []
        for c, chan in enumerate(call.channels):
            self._push_channel(call, chan, chan.resampler.push(np.ascontiguousarray(samples[:, c])), out, c)
        if self.interims is not None and not chunk.final:
            # Real time of this chunk's end: interims only while the stage keeps up with it.
            chunk_s = call.chunk_samples / TARGET_RATE
            lag = self.clock() - (call.stream_started_at + (chunk.seq + 1) * chunk_s)
            if lag <= self._interim_every / TARGET_RATE and self.interims.usable():
                for c, chan in enumerate(call.channels):
                    self._maybe_interim(call, chan, c)
        return out

    def _maybe_interim(self, call: _LiveCall, chan: _LiveChannel, c: int) -> None:
        open_since = chan.endpointer.open_since
        end = chan.base + chan.audio.size
        if open_since is None or not chan.speech_since_interim or end - chan.interim_at < self._interim_every:
            return
        start = max(open_since, chan.base)
        chan.interim_at, chan.speech_since_interim = end, False
        chan.interim_seq += 1
        self.interims.ask(InterimRequest(call.call_id, c, call.speakers[c], chan.count, start / TARGET_RATE,
                                         end / TARGET_RATE, chan.interim_seq, chan.audio[start - chan.base:].copy(),
                                         self.interims.clock()))

    def _push_channel(self, call: _LiveCall, chan: _LiveChannel, audio16k: np.ndarray, out: list, c: int) -> None:
        chan.audio = np.concatenate([chan.audio, audio16k])
        probs = chan.probs.push(audio16k)
        if probs.size and float(probs.max()) >= chan.endpointer.o.threshold:
            chan.speech_since_interim = True
        for span in chan.endpointer.push(probs):
            out.append(self._live_batch(call, chan, c, span, self._heard_for(chan, span)))
        if self._sentence_pause:
            self._maybe_close_at_sentence(call, chan, c, out)
        # Keep only what an open utterance (plus its left padding) may still need.
        keep_from = chan.endpointer.open_since
        if keep_from is None:
            keep_from = chan.base + chan.audio.size - int(0.5 * TARGET_RATE)
        drop = max(0, keep_from - chan.base)
        if drop:
            chan.audio = chan.audio[drop:]
            chan.base += drop

    def _maybe_close_at_sentence(self, call: _LiveCall, chan: _LiveChannel, c: int, out: list) -> None:
        """A pause of live_sentence_pause_ms inside an open utterance: recognize the utterance so
        far and, when it ends a sentence, close the utterance where the pause began (the
        sentence goes on now instead of after the rest of the utterance). Synchronous and
        independent of timing, so a replayed call is cut the same way; each pause is checked once."""
        pause = chan.endpointer.pause
        if pause is None or pause[1] < self._sentence_pause or chan.checked_pause == pause[0]:
            return
        chan.checked_pause = pause[0]
        engine = self._pause_engine
        if engine is None:
            engine = self._pause_engine = self._pause_engine_factory() if self._pause_engine_factory else None
        if engine is None or getattr(engine, "fixed_window_s", None) is not None:
            self._sentence_pause = 0  # no live engine, or one that pays a whole window per check (Whisper)
            return
        # Exactly the audio the utterance will have if it closes at this pause (its span: from
        # its padded start to the pause's start plus padding), so the words heard here are the
        # ones a second pass over that span would give.
        start = max(chan.endpointer.pending_span_start or chan.base, chan.base)
        end = min(pause[0] + chan.endpointer.pad, chan.base + chan.audio.size)
        audio = chan.audio[start - chan.base:end - chan.base]
        words: list[RecognizedWord] = []
        shift = start / TARGET_RATE
        with self._finals_first.final() if self._finals_first is not None else nullcontext():
            segments = list(engine.transcribe_live(audio))
        for seg in segments:
            for w in seg.timed_words():
                if w.text.strip():
                    words.append(RecognizedWord(w.text.strip(), w.start + shift, w.end + shift, w.probability))
        chan.heard = (pause[0], words)
        if ends_sentence(" ".join(w.text for w in words)):
            spans = chan.endpointer.close_at_pause()
            self.sentence_closes += len(spans)
            for span in spans:
                out.append(self._live_batch(call, chan, c, span, self._heard_for(chan, span)))

    def _heard_for(self, chan: _LiveChannel, span: Span) -> list[RecognizedWord] | None:
        """The words the sentence-pause check heard, when `span` closes at the very pause it
        checked (nothing was said after them); None otherwise. Used once."""
        heard, chan.heard = chan.heard, None
        if heard is None or span.end - chan.endpointer.pad != heard[0]:
            return None
        return heard[1]

    def _live_batch(self, call: _LiveCall, chan: _LiveChannel, c: int, span: Span,
                    heard: list[RecognizedWord] | None = None) -> UtteranceBatch:
        end = min(span.end, chan.base + chan.audio.size)
        start = max(span.start, chan.base)
        pcm = float_to_s16le(chan.audio[start - chan.base:end - chan.base])
        idx = chan.count
        chan.count += 1
        recognized = None
        if heard is not None:
            lo, hi = start / TARGET_RATE, end / TARGET_RATE
            recognized = []
            for w in redact_words(heard, self._redactor):
                w_start = min(max(w.start, lo), hi)
                recognized.append(Word(text=w.text, start=w_start, end=min(max(w.end, w_start), hi), probability=w.probability))
        return UtteranceBatch(
            call_id=call.call_id, channel=c, speaker=call.speakers[c], agent_id=call.agent_id,
            utterances=[UtteranceSpan(index=idx, start=start / TARGET_RATE, end=end / TARGET_RATE, offset=0.0)],
            audio=self.blobs.put(pcm), live_started_at=call.stream_started_at,
            recognized=recognized, recognized_by=self._pause_engine.model_id if recognized is not None else None,
        )

    def _close_live(self, call: _LiveCall) -> list[EventModel]:
        out: list[EventModel] = []
        for c, chan in enumerate(call.channels):
            tail = chan.resampler.flush()
            if tail.size:
                chan.audio = np.concatenate([chan.audio, tail])
                for span in chan.endpointer.push(chan.probs.push(tail)):
                    out.append(self._live_batch(call, chan, c, span))
            for span in chan.endpointer.finish():
                out.append(self._live_batch(call, chan, c, span))
        duration = max((ch.base + ch.audio.size) for ch in call.channels) / TARGET_RATE
        out.append(CallSegmented(call_id=call.call_id, duration_s=duration,
                                 utterances_per_channel={c: ch.count for c, ch in enumerate(call.channels)}))
        del self._live[call.call_id]
        if self.interims is not None:
            self.interims.forget(call.call_id)
        log.debug("live call %s closed after %.1f s", call.call_id, duration)
        return out
