"""The transcribe stage redacts PII before its utterances leave it: the text, the sentences
and the words of the TranscribedUtterance (what Kafka, sentiment, the store and logs see)."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.asr.base import RecognizedSegment, RecognizedWord
from callsense.audio.pcm import float_to_s16le
from callsense.core.events import UtteranceBatch, UtteranceSpan
from callsense.ingest.stages.transcribe import UtteranceTranscriber
from callsense.store.blobs import BlobStore

SPOKEN = "Sure. My card is four one one one, 1111 1111 1111. And my email is jo dot smith at example dot com. Thanks."


class ScriptedEngine:
    """An ASR engine that 'hears' a fixed text, one word per 0.3 s, in one segment."""

    fixed_window_s = None
    model_id = "scripted"

    def transcribe(self, audio):
        words = [RecognizedWord(" " + t, 0.3 * i, 0.3 * i + 0.25, 0.9) for i, t in enumerate(SPOKEN.split())]
        return [RecognizedSegment(SPOKEN, 0.0, words[-1].end, words)]

    transcribe_live = transcribe


def _run(tmp_path, mode):
    blobs = BlobStore(tmp_path, 1 << 20)
    audio = np.zeros(16000 * 8, np.float32)
    ev = UtteranceBatch(call_id="c1", channel=1, speaker="customer",
                        utterances=[UtteranceSpan(index=0, start=0.0, end=8.0, offset=0.0)],
                        audio=blobs.put(float_to_s16le(audio)))
    kwargs = {} if mode is None else {"pii_redaction": mode}
    [out] = UtteranceTranscriber(ScriptedEngine(), blobs, **kwargs).handle_batch([ev])
    return out


@pytest.mark.parametrize("mode", [None, "mask"])  # mask is the default
def test_masked_before_leaving_the_stage(tmp_path, mode):
    out = _run(tmp_path, mode)
    dumped = out.model_dump_json()
    for clear in ("4111", "1111", "four one one one", "smith", "example"):
        assert clear not in dumped
    assert out.text == "Sure. My card is [CARD]. And my email is [EMAIL]. Thanks."
    assert [s.text for s in out.sentences] == ["Sure.", "My card is [CARD].", "And my email is [EMAIL].", "Thanks."]
    card = out.sentences[1].words[-1]
    assert card.text == "[CARD]." and card.start == pytest.approx(0.3 * 4) and card.end == pytest.approx(0.3 * 10 + 0.25)


def test_remove_and_off(tmp_path):
    assert _run(tmp_path, "remove").text == "Sure. My card is. And my email is. Thanks."
    assert _run(tmp_path, "off").text == SPOKEN


@pytest.mark.parametrize("mode", ["mask", "remove"])
def test_times_of_the_redacted_words_go_on_for_the_recording(tmp_path, mode):
    out = _run(tmp_path, mode)
    # "four one one one, 1111 1111 1111." are words 4..10, "jo dot smith at example dot com." 15..21.
    assert [(p.kind, p.start, p.end) for p in out.pii_spans] == [
        ("CARD", pytest.approx(0.3 * 4), pytest.approx(0.3 * 10 + 0.25)),
        ("EMAIL", pytest.approx(0.3 * 15), pytest.approx(0.3 * 21 + 0.25))]
    assert out.window_blob is None  # the 8 s window travelled inline
    assert _run(tmp_path, "off").pii_spans == []


def test_window_blob_named_and_withdrawn_window_skipped(tmp_path):
    blobs = BlobStore(tmp_path, 1000)  # every window by claim-check
    ev = UtteranceBatch(call_id="c1", channel=1, speaker="customer",
                        utterances=[UtteranceSpan(index=0, start=10.0, end=18.0, offset=0.0)],
                        audio=blobs.put(float_to_s16le(np.zeros(16000 * 8, np.float32))))
    stage = UtteranceTranscriber(ScriptedEngine(), blobs)
    [out] = stage.handle_batch([ev])
    assert out.window_blob == ev.audio.blob and out.pii_spans[0].start == pytest.approx(10 + 0.3 * 4)
    # Withdrawn once the call was done (store stage): a redelivery of the batch is skipped...
    blobs.withdraw(ev.audio.blob, "c1")
    assert stage.handle_batch([ev]) == []
    # ...but a batch of another call naming the same audio is not a duplicate: it fails loudly.
    with pytest.raises(FileNotFoundError, match="withdrawn"):
        stage.handle_batch([ev.model_copy(update={"call_id": "c2"})])
