"""TTS engines: espeak-ng embedded (the default) and Riva (against riva-serve)."""

from __future__ import annotations

import numpy as np
import pytest

from callsense.asr.tts.base import TtsUnavailable, create_tts_engine, split_sentences, tts_engines
from callsense.core.settings import Settings


@pytest.fixture(scope="module")
def espeak():
    return create_tts_engine(Settings())  # the default engine


def test_default_engine_is_espeak_and_speaks(espeak):
    assert espeak.name == "espeak" and espeak.model_id.startswith("espeak-ng:")
    clip = espeak.synthesize("Your refund has been approved.")
    assert clip.sample_rate == 22050 and clip.samples.dtype == np.float32
    assert 1.0 < clip.duration_s < 4.0
    assert np.abs(clip.samples).max() > 0.1 and np.abs(clip.samples).max() <= 1.0
    at16k = espeak.synthesize("Your refund has been approved.", sample_rate=16000)
    assert at16k.sample_rate == 16000 and at16k.duration_s == pytest.approx(clip.duration_s, abs=0.05)
    assert clip.wav()[:4] == b"RIFF" and len(clip.pcm16()) == 2 * clip.samples.size


def test_text_is_never_taken_for_an_option(espeak):
    clip = espeak.synthesize("--help me please")
    assert clip.duration_s > 0.5


def test_streaming_gives_a_chunk_per_sentence(espeak):
    text = "Thank you for calling. Your order shipped today! Anything else?"
    assert split_sentences(text) == ["Thank you for calling.", "Your order shipped today!", "Anything else?"]
    chunks = list(espeak.synthesize_stream(text, sample_rate=16000))
    assert [c.text for c in chunks] == split_sentences(text)
    assert all(c.sample_rate == 16000 and c.duration_s > 0.3 for c in chunks)


def test_voices_and_clear_errors(espeak):
    names = {v.name for v in espeak.voices()}
    assert {"en-us", "en-gb"} <= names
    assert espeak.synthesize("Hello.", voice="en-gb").duration_s > 0.2
    with pytest.raises(TtsUnavailable, match="no voice 'klingon'"):
        create_tts_engine(Settings(espeak_voice="klingon"))
    with pytest.raises(TtsUnavailable, match="espeak-ng failed for voice 'xx-nope'"):
        espeak.synthesize("Hello.", voice="xx-nope")
    assert espeak.synthesize("   ").samples.size == 0
    assert tts_engines.names() == ["espeak", "riva"]


def test_riva_tts_engine_round_trip(riva_settings, normalize):
    pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
    from callsense.asr.engines.riva import RivaEngine

    tts = create_tts_engine(riva_settings.model_copy(update={"tts_engine": "riva"}))
    assert tts.name == "riva"
    text = "I would like a refund for the double charge on my bill."
    clip = tts.synthesize(text, sample_rate=16000)
    assert clip.sample_rate == 16000 and clip.duration_s > 2
    heard = " ".join(s.text for s in RivaEngine(riva_settings).transcribe(clip.samples))
    assert normalize(heard) == normalize(text)
    chunks = list(tts.synthesize_stream("Thank you for calling. How can I help you today?"))
    assert len(chunks) == 2 and chunks[0].text == "Thank you for calling." and chunks[0].sample_rate == 22050
    assert "callsense-espeak.en-us" in {v.name for v in tts.voices()}


def test_riva_tts_dead_server_is_transient(pick_ports):
    pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
    from callsense.core.errors import TransientError

    url = f"127.0.0.1:{pick_ports(1)[0]}"
    tts = create_tts_engine(Settings(tts_engine="riva", riva_url=url, riva_retries=0, riva_tts_voice="English-US.Female-1"))
    with pytest.raises(TtsUnavailable, match=f"Riva TTS at {url} \\(model English-US.Female-1\\) is unavailable") as info:
        tts.synthesize("Hello.")
    assert isinstance(info.value, TransientError)
