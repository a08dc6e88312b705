"""riva-serve with its default engine, Moonshine: the served model names, and streaming
recognition with interim results (NVIDIA's protocol, through callsense's Riva client):
interims of the open utterance come before its final result, whose words are right."""

from __future__ import annotations

import jiwer
import numpy as np
import pytest

pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from callsense.asr.engines.riva import RivaEngine  # noqa: E402
from callsense.core.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def moonshine_server():
    from callsense.serve.riva.server import RivaServer

    settings = Settings()
    assert settings.riva.serve_asr_engine == "moonshine"
    server = RivaServer(settings, host="127.0.0.1", port=0, workers=4).start()
    try:
        yield server.address
    finally:
        server.stop()


def test_streaming_gives_interims_then_a_right_final(moonshine_server, shared_audio):
    from callsense.audio.decode import decode_audio

    audio = decode_audio((shared_audio / "jfk.flac").read_bytes()).channels[0]
    engine = RivaEngine(Settings(riva_url=moonshine_server, riva_timeout_s=120))
    assert engine.model_id == "riva:callsense-moonshine-en-US"
    chunks = [audio[k:k + 1600] for k in range(0, audio.size, 1600)] + [np.zeros(16000, np.float32)]
    results = list(engine.transcribe_stream(chunks, interim_results=True))
    finals = [r for r in results if r.is_final]
    assert finals
    first_final = results.index(finals[0])
    assert any(not r.is_final and r.text for r in results[:first_final])  # interims of the first utterance
    text = jiwer.RemovePunctuation()(" ".join(r.text for r in finals).lower())
    reference = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
    assert jiwer.wer(reference, text) <= 0.15, text
