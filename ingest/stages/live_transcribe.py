"""The live-transcribe stage: live calls recognized natively by Riva streaming.

With `CALLSENSE_LIVE_ASR=riva-streaming` the segment stage leaves live calls alone and this
stage consumes their `CallChunk`s: one Riva `StreamingRecognize` per call and channel, kept
open across polls and fed each chunk's samples as they come (s16le, mu-law or A-law, any
rate: Riva decodes them). Riva's endpointing ends the utterances; each final result
becomes a `TranscribedUtterance` (word times in call time, index per channel from 0), and
the call gets `CallOpened` / `CallSegmented` like the VAD path gives it, so the sentiment
and store stages, and the dashboard, see the same thing. Riva's interim results (asked for
when `live_interim_ms` > 0) become `InterimTranscript`s for the Live page, PII masked
(numbers cut short included), at most one per channel every `live_interim_ms`.

Threads: a stream reads its audio from a queue that the stage fills, and a thread per
stream drains its responses into a list. `handle_batch` turns the finals that are ready
into events, and so does `pending()`, which the Kafka transport calls between polls; a
transport that never calls it (the in-process one) gets a call's last finals from the
batch with its last chunk, which waits for them. Stage state is touched only by the
calling (consumer) thread.

Failures: a stream that dies (server restarted, network) is reopened with backoff, fed
again from the end of its last final result (the audio since then is kept in memory, at
most `MAX_REPLAY_S`). When it cannot be reopened within `riva_stream_recovery_s`, the
audio it held is dead-lettered (non-fatal) and the call goes on. A server that refuses
the stream (model, credentials) fails the call with one dead letter.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from callsense.asr.base import AsrUnavailable, RecognizedWord
from callsense.asr.engines.riva import RivaEngine, RivaStream, RivaUnavailable, StreamingTranscript
from callsense.core.settings import Settings
from callsense.core.errors import BadInput
from callsense.core.events import (
    CallChunk, CallOpened, CallSegmented, EventModel, InterimTranscript, TranscribedUtterance,
)
from callsense.ingest.reorder import ChunkReorderBuffer, MissingChunks
from callsense.ingest.stages.interim import partial_redactor
from callsense.ingest.stages.segment import missing_chunks_letter
from callsense.ingest.stage import dead_letter
from callsense.ingest.stages.transcribe import utterance_sentences
from callsense.nlp.pii import PiiRedactor, redact_words
from callsense.nlp.sentences import join_words

log = logging.getLogger("callsense.live")

# Audio kept per channel for reopening a stream: the longest utterance Riva may still owe.
MAX_REPLAY_S = 30.0
# A reopened stream that has run this long without failing counts as recovered.
HEALTHY_AFTER_S = 5.0
MAX_BACKOFF_S = 10.0
BYTES_PER_SAMPLE = {"s16le": 2, "mulaw": 1, "alaw": 1}
SILENCE = {"s16le": b"\x00\x00", "mulaw": b"\xff", "alaw": b"\xd5"}  # one sample of each encoding
_END = object()


class _AudioFeed:
    """The request side of one stream: the stage puts bytes, gRPC's thread iterates."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._aborted = False

    def put(self, data: bytes) -> None:
        self._queue.put(data)

    def end(self) -> None:
        """The call's audio is complete: the stream half-closes and Riva sends its last finals."""
        self._queue.put(_END)

    def abort(self) -> None:
        """Release gRPC's reading thread of a stream that is over."""
        self._aborted = True
        self._queue.put(_END)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END or self._aborted:
                return
            yield item


@dataclass
class _StreamRun:
    """One StreamingRecognize attempt of one channel; its thread fills `finals`."""

    feed: _AudioFeed
    handle: RivaStream | None
    base: int  # sample index (channel rate) of the stream's first sample in the call
    started: float  # monotonic
    finals: list[StreamingTranscript] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    any_final: bool = False
    last_final_at: float = 0.0  # monotonic
    interim: StreamingTranscript | None = None  # Riva's newest interim result not handed on yet

    def take_interim(self) -> StreamingTranscript | None:
        with self.lock:
            out, self.interim = self.interim, None
        return out

    def take(self) -> list[StreamingTranscript]:
        with self.lock:
            out, self.finals = self.finals, []
        return out


@dataclass
class _Channel:
    """One channel of a live call: the audio since its last final, and its current stream."""

    index: int
    rate: int
    encoding: str
    kept: bytearray = field(default_factory=bytearray)
    kept_from: int = 0  # sample index of kept[0]
    fed: int = 0  # samples received
    chunk_samples: int = 0
    count: int = 0  # finals emitted = next utterance index
    last_end: float = 0.0  # call time of the end of the last final
    run: _StreamRun | None = None
    input_closed: bool = False
    closed_at: float = 0.0
    complete: bool = False
    failing_since: float | None = None
    last_error: str = ""
    retry_at: float = 0.0
    delay: float = 0.0
    interim_seq: int = 0
    interim_at: float = 0.0  # monotonic time of the last interim handed on

    @property
    def width(self) -> int:
        return BYTES_PER_SAMPLE[self.encoding]

    def keep(self, data: bytes) -> None:
        self.kept += data
        self.fed += len(data) // self.width
        limit = int(MAX_REPLAY_S * self.rate) * self.width
        if len(self.kept) > limit:
            self.drop_until(self.kept_from + (len(self.kept) - limit) // self.width)

    def drop_until(self, sample: int) -> None:
        cut = min(max(0, sample - self.kept_from), len(self.kept) // self.width)
        if cut:
            del self.kept[:cut * self.width]
            self.kept_from += cut


@dataclass
class _LiveCall:
    call_id: str
    source_name: str
    agent_id: str | None
    started_at: float
    speakers: list[str]
    channels: list[_Channel]
    final_seen: bool = False
    failed: bool = False


class RivaLiveTranscriber:
    """Live calls' chunks in, Riva streaming's final results out as transcribed utterances."""

    name = "live-transcribe"
    inputs = ("calls",)

    def __init__(self, settings: Settings, engine: RivaEngine):
        self.settings = settings
        self.engine = engine
        self._calls: dict[str, _LiveCall] = {}
        self._redactor = PiiRedactor(settings.pipeline.pii_redaction)
        # Interim text (Riva's interim results) on the interim topic, at most every
        # live_interim_ms per channel, PII masked like the segment path's (0: none asked for).
        self._interim_s = settings.pipeline.live_interim_ms / 1000
        self._redact_interim = partial_redactor(self._redactor)
        self._order = ChunkReorderBuffer(settings.pipeline.live_reorder_window, self.name)
        self._wakeup = threading.Event()
        # Set once a transport calls `pending()` between polls: it then collects a call's
        # last finals, and a batch with a call's last chunk need not wait for them.
        self._transport_polls = False

    # ---- the stage interface -------------------------------------------------------

    def open_calls(self) -> set[str]:
        """Calls whose streams live in this process: after a crash they are replayed from
        their first chunk into new streams (same utterance indexes, so upserts stay exactly-once)."""
        return (self._order.open_calls() | set(self._calls)) - {c for c, call in self._calls.items() if call.failed}

    def handle_batch(self, events: Sequence[EventModel]) -> list[EventModel]:
        out: list[EventModel] = []
        ending: list[str] = []
        for ev in events:
            if isinstance(ev, CallChunk):
                try:
                    out.extend(self._chunk(ev))
                except BadInput as e:  # here, not by re-running the batch: its chunks went into streams
                    out.append(dead_letter(self.name, ev, str(e)))
                    log.warning("dead-lettered a chunk of live call %s: %s", ev.call_id, e)
                    continue
                call = self._calls.get(ev.call_id)
                if call is not None and call.final_seen and not call.failed:
                    ending.append(ev.call_id)
        # A call's last finals come after its last chunk. Without a transport polling
        # `pending()`, wait for them here (bounded; what is still missing then comes out of
        # a later batch); with one, do not hold other calls' finals back meanwhile.
        wait = 0.0 if self._transport_polls else self.settings.riva.timeout_s + self.settings.riva.stream_recovery_s
        out.extend(self._collect(ending, wait))
        return out

    def pending(self) -> list[EventModel]:
        """Finals that arrived since the last call, and calls that finished: for a transport
        to call when no message came (finals do not wait for the next chunk). Call it from
        the thread that calls `handle_batch`."""
        self._transport_polls = True
        return self._collect((), 0.0)

    def close(self) -> None:
        """Cancel every open stream (the process is stopping; Kafka replays the calls)."""
        for call in self._calls.values():
            for ch in call.channels:
                self._abandon(ch)
        self._calls.clear()

    # ---- chunks --------------------------------------------------------------------

    def _chunk(self, chunk: CallChunk) -> list[EventModel]:
        out: list[EventModel] = []
        call = self._calls.get(chunk.call_id)
        if call is not None and call.final_seen:
            return out  # a late duplicate of a call whose audio is complete
        if call is None:
            if not self._order.starts_call(chunk):
                return out
            call = self._open_call(chunk)
            out.append(CallOpened(call_id=call.call_id, source_name=call.source_name, mode="live", channels=len(call.channels),
                                  speakers=call.speakers, agent_id=call.agent_id, started_at=call.started_at))
        for item in self._order.push(chunk):
            if call.failed:
                pass  # swallowed until the final chunk
            elif isinstance(item, MissingChunks):
                out.append(missing_chunks_letter(self.name, chunk, item, self.settings.pipeline.live_reorder_window))
                for ch in call.channels:
                    self._push(ch, SILENCE[ch.encoding] * (ch.chunk_samples * item.count))
            else:
                for ch, data in zip(call.channels, self._split(call, item)):
                    ch.chunk_samples = len(data) // ch.width or ch.chunk_samples
                    self._push(ch, data)
            if isinstance(item, CallChunk) and item.final:
                call.final_seen = True
                if call.failed:
                    del self._calls[call.call_id]
                    continue
                now = time.monotonic()
                for ch in call.channels:
                    ch.input_closed, ch.closed_at = True, now
                    if ch.run is not None:
                        ch.run.feed.end()
        return out

    def _open_call(self, chunk: CallChunk) -> _LiveCall:
        if chunk.channels < 1 or chunk.sample_rate < 4000 or chunk.encoding not in BYTES_PER_SAMPLE:
            raise BadInput(f"live call {chunk.call_id}: bad stream format ({chunk.channels} channels at {chunk.sample_rate} Hz, "
                           f"{chunk.encoding})")
        n = chunk.channels
        call = _LiveCall(
            call_id=chunk.call_id, source_name=chunk.source_name, agent_id=chunk.agent_id, started_at=chunk.stream_started_at,
            speakers=[self.settings.role_of_channel(c, n) for c in range(n)],
            channels=[_Channel(c, chunk.sample_rate, chunk.encoding) for c in range(n)],
        )
        self._calls[call.call_id] = call
        now = time.monotonic()
        for ch in call.channels:
            self._start_run(call, ch, now)
        log.debug("live call %s: %d Riva stream(s) opened at %d Hz %s", call.call_id, n, chunk.sample_rate, chunk.encoding)
        return call

    @staticmethod
    def _split(call: _LiveCall, chunk: CallChunk) -> list[bytes]:
        """Interleaved samples -> one byte string per channel, in the chunk's encoding."""
        n = len(call.channels)
        if n == 1:
            return [chunk.pcm]
        dtype = "<i2" if chunk.encoding == "s16le" else np.uint8
        samples = np.frombuffer(chunk.pcm[: len(chunk.pcm) - len(chunk.pcm) % (n * np.dtype(dtype).itemsize)], dtype=dtype)
        frames = samples.reshape(-1, n)
        return [np.ascontiguousarray(frames[:, c]).tobytes() for c in range(n)]

    def _push(self, ch: _Channel, data: bytes) -> None:
        if not data:
            return
        ch.keep(data)
        if ch.run is not None and not ch.run.done.is_set():
            ch.run.feed.put(data)

    # ---- streams -------------------------------------------------------------------

    def _start_run(self, call: _LiveCall, ch: _Channel, now: float) -> None:
        feed = _AudioFeed()
        piece = max(1, ch.rate // 10) * ch.width  # replayed audio goes in 100 ms requests
        for i in range(0, len(ch.kept), piece):
            feed.put(bytes(ch.kept[i:i + piece]))
        if ch.input_closed:
            feed.end()
        run = _StreamRun(feed, None, base=ch.kept_from, started=now)
        ch.run = run
        try:
            run.handle = self.engine.open_stream(feed, interim_results=self._interim_s > 0, sample_rate=ch.rate,
                                                 encoding=ch.encoding)
        except Exception as e:  # serviced like a stream that failed at once
            run.error = e
            run.done.set()
            return
        threading.Thread(target=self._drain, args=(run,), name=f"riva-live-{call.call_id}-{ch.index}", daemon=True).start()

    def _drain(self, run: _StreamRun) -> None:
        try:
            for result in run.handle:
                if result.is_final:
                    with run.lock:
                        run.finals.append(result)
                        run.any_final, run.last_final_at = True, time.monotonic()
                        run.interim = None  # the final replaces it
                    self._wakeup.set()
                elif result.text.strip():
                    with run.lock:
                        run.interim = result
        except BaseException as e:  # handed to the consumer thread
            run.error = e
        finally:
            run.done.set()
            self._wakeup.set()

    def _abandon(self, ch: _Channel) -> None:
        run, ch.run = ch.run, None
        if run is not None:
            if not run.done.is_set():
                run.handle.cancel()
            run.feed.abort()

    # ---- results -------------------------------------------------------------------

    def _collect(self, ending: Sequence[str], wait_s: float) -> list[EventModel]:
        """Service every call (finals, failures, reopening, ends); wait up to `wait_s` for
        the calls in `ending` to finish."""
        out: list[EventModel] = []
        deadline = time.monotonic() + wait_s
        while True:
            self._wakeup.clear()
            now = time.monotonic()
            for call in list(self._calls.values()):
                self._service(call, now, out)
            waiting = [c for c in ending if c in self._calls and not self._calls[c].failed]
            left = deadline - time.monotonic()
            if not waiting or left <= 0:
                return out
            self._wakeup.wait(min(left, 0.05))

    def _service(self, call: _LiveCall, now: float, out: list[EventModel]) -> None:
        for ch in call.channels:
            if call.failed:
                break
            self._service_channel(call, ch, now, out)
        if call.failed:
            for ch in call.channels:
                self._abandon(ch)
            if call.final_seen:
                del self._calls[call.call_id]
            return
        if call.final_seen and all(ch.complete for ch in call.channels):
            duration = max(ch.fed / ch.rate for ch in call.channels)
            out.append(CallSegmented(call_id=call.call_id, duration_s=duration,
                                     utterances_per_channel={ch.index: ch.count for ch in call.channels}))
            del self._calls[call.call_id]
            log.debug("live call %s closed after %.1f s", call.call_id, duration)

    def _service_channel(self, call: _LiveCall, ch: _Channel, now: float, out: list[EventModel]) -> None:
        if ch.complete:
            return
        run = ch.run
        if run is not None:
            for result in run.take():
                utt = self._utterance(call, ch, result, run.base)
                if utt is not None:
                    out.append(utt)
            if self._interim_s > 0 and now - ch.interim_at >= self._interim_s:
                interim = run.take_interim()
                if interim is not None:
                    ev = self._interim(call, ch, interim, run.base)
                    if ev is not None:
                        ch.interim_at = now
                        out.append(ev)
            healthy = run.any_final or (not ch.input_closed and not run.done.is_set() and now - run.started >= HEALTHY_AFTER_S)
            if ch.failing_since is not None and healthy:
                log.info("live call %s channel %d: Riva stream reopened after %.1f s; it goes on from call time %.2f s",
                         call.call_id, ch.index, now - ch.failing_since, run.base / ch.rate)
                ch.failing_since = None
            if run.done.is_set():
                for result in run.take():  # what arrived between the two looks
                    utt = self._utterance(call, ch, result, run.base)
                    if utt is not None:
                        out.append(utt)
                ch.run = None
                run.feed.abort()
                error = run.error
                if error is None and ch.input_closed:
                    ch.complete = True
                    return
                if isinstance(error, AsrUnavailable) and not isinstance(error, RivaUnavailable) \
                        and getattr(error, "grpc_code", "") not in ("CANCELLED", "ABORTED", "UNKNOWN", "INTERNAL"):
                    call.failed = True
                    out.append(dead_letter(self.name, call, f"live call {call.call_id}: {error}"))
                    log.warning("live call %s: Riva refused the stream, call failed: %s", call.call_id, error)
                    return
                reason = str(error) if error is not None else "the server ended the stream before the call ended"
                self._failed(call, ch, reason, now, out)
            elif ch.input_closed and now - max(ch.closed_at, run.started, run.last_final_at) > self.settings.riva.timeout_s:
                self._abandon(ch)
                self._failed(call, ch, f"no result and no end of stream within {self.settings.riva.timeout_s:g} s "
                                       "after the call's audio ended", now, out)
        if ch.run is None and not ch.complete and now >= ch.retry_at:
            if ch.input_closed and not ch.kept:
                ch.complete = True  # nothing left to recognize
                return
            self._start_run(call, ch, now)

    def _failed(self, call: _LiveCall, ch: _Channel, reason: str, now: float, out: list[EventModel]) -> None:
        """Schedule a reopen with backoff, or give the held audio up once the budget is spent."""
        ch.last_error = reason
        kept_s = (ch.fed - ch.kept_from) / ch.rate
        if ch.failing_since is None:
            ch.failing_since, ch.delay = now, self.settings.riva.retry_backoff_s
            log.warning("live call %s channel %d: Riva stream failed (%s); reopening it from call time %.2f s "
                        "(%.1f s of audio kept) in %.1f s", call.call_id, ch.index, reason, ch.kept_from / ch.rate, kept_s, ch.delay)
        else:
            ch.delay = min(ch.delay * 2, MAX_BACKOFF_S)
            log.info("live call %s channel %d: Riva stream still failing (%s); next try in %.1f s",
                     call.call_id, ch.index, reason, ch.delay)
        budget = self.settings.riva.stream_recovery_s
        if now - ch.failing_since >= budget:
            start, end = ch.kept_from / ch.rate, ch.fed / ch.rate
            out.append(dead_letter(
                self.name, call, f"live call {call.call_id} channel {ch.index}: Riva streaming failed for {budget:g} s "
                                 f"({reason}); call time {start:.2f}..{end:.2f} s was not transcribed", fatal=False))
            log.warning("live call %s channel %d: gave up on %.1f s of audio after %.0f s of failures; the call goes on",
                        call.call_id, ch.index, end - start, now - ch.failing_since)
            ch.drop_until(ch.fed)
            ch.failing_since = None
            if ch.input_closed:
                ch.complete = True
        ch.retry_at = now + ch.delay

    def _interim(self, call: _LiveCall, ch: _Channel, result: StreamingTranscript, base: int) -> InterimTranscript | None:
        """Riva's interim result as the Live page's grey line of the utterance being spoken."""
        text = self._redact_interim(result.text.strip()).strip()
        if not text:
            return None
        offset = base / ch.rate
        start = result.words[0].start + offset if result.words else ch.last_end
        ch.interim_seq += 1
        return InterimTranscript(call_id=call.call_id, channel=ch.index, speaker=call.speakers[ch.index], index=ch.count,
                                 text=text, start=start, end=max(start, offset + result.audio_processed), seq=ch.interim_seq)

    def _utterance(self, call: _LiveCall, ch: _Channel, result: StreamingTranscript, base: int) -> TranscribedUtterance | None:
        offset = base / ch.rate
        words = [RecognizedWord(w.text, w.start + offset, w.end + offset, w.probability) for w in result.words]
        if not words:
            if not result.text:
                return None
            end = max(offset + result.audio_processed, ch.last_end)
            words = [RecognizedWord(result.text, ch.last_end, end, result.confidence or 1.0)]
        index, ch.count = ch.count, ch.count + 1
        ch.last_end = words[-1].end
        words = redact_words(words, self._redactor)  # PII leaves this stage masked (or removed)
        ch.drop_until(int(words[-1].end * ch.rate))  # a reopened stream starts after this final
        if not words:  # all of it was PII, removed
            words = [RecognizedWord("", ch.last_end, ch.last_end, 1.0)]
        return TranscribedUtterance(
            call_id=call.call_id, channel=ch.index, speaker=call.speakers[ch.index], agent_id=call.agent_id, index=index,
            start=words[0].start, end=words[-1].end, text=join_words(words),
            confidence=float(np.mean([w.probability for w in words])), asr_model=self.engine.model_id,
            sentences=utterance_sentences(words), live_started_at=call.started_at,
        )
