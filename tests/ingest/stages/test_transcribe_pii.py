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
