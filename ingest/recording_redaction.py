"""PII in stored recordings (`settings.pipeline.pii_audio`), run by the store stage after each batch.

The transcribe stage redacts PII in the words and sends on where it was said
(`TranscribedUtterance.pii_spans`, call time) and the claim-check blob of the audio it heard
it in (`window_blob`). The store stage keeps both (`utterances.pii_spans`, a `clear_audio_blobs`
row per window). Once a recorded call is done (every utterance stored, so every span known):

1. the recording is read from the blob store, the spans, padded by `pii_audio_pad_ms`, are
   silenced (or covered by a tone) on every channel (`audio/redact.py`) and the result is put
   in the blob store (fsynced; content-addressed, so doing it again gives the same blob);
2. one transaction makes the call name the redacted blob, records what was done
   (`calls.audio_redaction`) and lists the original among the call's clear audio;
3. the clear audio of the call (the original, the windows that held PII) is withdrawn:
   `BlobStore.withdraw` marks the blob withdrawn for the call, then deletes it, then the
   row goes.

A worker killed between any two steps leaves the call naming a blob that exists: before 2
the original (the redacted copy, if written, is an unnamed blob the collector removes later),
after 2 the redacted one. Each step is repeated safely: Kafka redelivers the batch (offsets
are committed after `handle_batch` returns), the next batch that touches the call picks up
where it stopped, and each store stage sweeps what a crash left when it starts (calls started
in the last SWEEP_DAYS). A redelivered event that names a withdrawn blob of its own call is a
duplicate of work already stored: the segment and transcribe stages skip it, and the store
stage does not let a redelivered `CallOpened` point the call back at its original.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Iterable, Sequence

from sqlalchemy.exc import OperationalError

from callsense.audio.decode import AudioLimits
from callsense.audio.redact import pad_spans, redact_spans
from callsense.core.claims import AudioRef
from callsense.core.errors import BadInput, TransientError
from callsense.core.events import DeadLetter
from callsense.store.blobs import BlobStore
from callsense.store.repository import ResultStore
from callsense.store.rows import RecordingToRedact, ResultBatch

log = logging.getLogger("callsense.store")

SWEEP_DAYS = 7
# A clear blob written again after its row was added is wanted by another input in flight (the
# same file submitted again): left for that input's own redaction (clock skew of a shared volume).
RECENT_PUT_SLACK_S = 2.0
STATE_OF_FILL = {"silence": "silenced", "tone": "toned", "keep": "kept"}


class RecordingRedactor:
    def __init__(self, store: ResultStore, blobs: BlobStore, pii_audio: str = "silence", pad_ms: int = 250,
                 limits: AudioLimits | None = None):
        self.store = store
        self.blobs = blobs
        self.pii_audio = pii_audio
        self.pad_s = pad_ms / 1000
        self.limits = limits
        self._swept = False

    @classmethod
    def from_settings(cls, settings, store: ResultStore, blobs: BlobStore) -> "RecordingRedactor":
        return cls(store, blobs, settings.pipeline.pii_audio, settings.pipeline.pii_audio_pad_ms,
                   AudioLimits.from_settings(settings))

    def before_batch(self, batch: ResultBatch) -> ResultBatch:
        """A `CallOpened` naming a blob withdrawn for its own call (redelivered, or the same file
        submitted again) must not point the call back at it: its recording is blanked (the call
        keeps the redacted one) and the blob, if it was written again, is listed as clear audio."""
        for i, row in enumerate(batch.opened):
            if row.audio_blob and row.call_id in (self.blobs.withdrawn_calls(row.audio_blob) or ()):
                batch.opened[i] = dataclasses.replace(row, audio_blob=None)
                batch.clear_blobs.append((row.call_id, row.audio_blob, "recording"))
        return batch

    def after_batch(self, call_ids: Iterable[str]) -> list[DeadLetter]:
        """Redact the recordings of the calls that are done now, withdraw their clear audio."""
        ids = sorted(set(call_ids))
        letters: list[DeadLetter] = []
        try:
            if not self._swept:  # what a crash left: once per process, at the first batch
                self._swept = True
                letters += self._redact_all(self.store.recordings_to_redact(since=time.time() - SWEEP_DAYS * 86400))
                self._withdraw(self.store.clear_blobs_due())
            letters += self._redact_all(self.store.recordings_to_redact(ids))
            self._withdraw(self.store.clear_blobs_due(ids))
        except OSError as e:  # the blob store's volume: full, gone, read-only
            self._swept = False
            raise TransientError(f"blob store unavailable while redacting recordings: {e}") from e
        return letters

    def _redact_all(self, jobs: Sequence[RecordingToRedact]) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        for job in jobs:
            try:
                letters += self._redact(job)
            except (OSError, OperationalError):
                raise  # the blob store or the database is away: the batch is retried
            except Exception as e:  # a bug must not fail the call (a stage error dead-letters its events)
                log.exception("call %s: redacting the recording failed", job.call_id)
                letters.append(DeadLetter(stage="store", call_id=job.call_id, fatal=False, reason=(
                    f"call {job.call_id}: the recording's PII could not be redacted (tried again when the "
                    f"call is next stored or the store stage starts): {e.__class__.__name__}: {e}")))
        return letters

    def _redact(self, job: RecordingToRedact) -> list[DeadLetter]:
        if self.pii_audio == "keep":
            self.store.replace_recording(job.call_id, job.audio_blob, job.audio_blob, STATE_OF_FILL["keep"])
            return []
        spans = pad_spans(job.spans, self.pad_s)
        try:
            data = self.blobs.get(AudioRef(blob=job.audio_blob, n_bytes=0))
        except FileNotFoundError as e:
            log.warning("call %s: its recording is missing, nothing to redact: %s", job.call_id, e)
            return [DeadLetter(stage="store", call_id=job.call_id, fatal=False,
                               reason=f"call {job.call_id}: the recording to redact is missing: {e}")]
        try:
            redacted = redact_spans(data, spans, "tone" if self.pii_audio == "tone" else "silence", self.limits)
        except BadInput as e:
            # Fail closed: a recording whose PII cannot be silenced is not kept playable.
            self.store.replace_recording(job.call_id, job.audio_blob, None, "withdrawn")
            log.error("call %s: recording withdrawn, its PII could not be silenced: %s", job.call_id, e)
            return [DeadLetter(stage="store", call_id=job.call_id, fatal=False,
                               reason=f"call {job.call_id}: recording withdrawn (its PII could not be silenced): {e}")]
        ref = self.blobs.put(redacted.data, keep=True)
        if self.store.replace_recording(job.call_id, job.audio_blob, ref.blob, STATE_OF_FILL[self.pii_audio]):
            log.info("call %s: %d PII span(s), %.1f s, %s in the recording (%s)", job.call_id, len(spans),
                     redacted.seconds_silenced, STATE_OF_FILL[self.pii_audio], redacted.container)
        return []

    def _withdraw(self, rows) -> None:
        for row in rows:
            if self.store.blob_in_use(row.blob):
                continue  # another call's recording (the same file as two calls), or this call's redacted copy
            put_at = self.blobs.modified_at(row.blob)
            if put_at is not None and put_at > row.added_at + RECENT_PUT_SLACK_S:
                continue
            self.blobs.withdraw(row.blob, row.call_id)
            self.store.forget_clear_blob(row.call_id, row.blob)
