"""Word boosting changes what riva-serve hears: a business name that Whisper tiny.en
misspells becomes right once boosted (SpeechContext -> faster-whisper hotwords), through
the riva.client helper NVIDIA's scripts use and through the riva engine's setting."""

from __future__ import annotations

import pytest

riva_client = pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")

from callsense.asr.engines.riva import RivaEngine  # noqa: E402
from callsense.asr.tts.base import create_tts_engine  # noqa: E402
from callsense.core.settings import Settings  # noqa: E402

SENTENCE = "Please escalate this ticket to Fabrikam."


@pytest.fixture(scope="module")
def spoken():
    """The sentence spoken by espeak-ng, as 16-bit PCM at 16 kHz."""
    clip = create_tts_engine(Settings(tts_engine="espeak", espeak_voice="en-us", espeak_words_per_minute=165)).synthesize(
        SENTENCE, sample_rate=16000)
    return clip.pcm16()


def recognize(riva_auth, pcm: bytes, boosted: list[str] | None) -> str:
    config = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000,
                                           language_code="en-US", enable_automatic_punctuation=True)
    riva_client.add_word_boosting_to_config(config, boosted, 20.0)
    response = riva_client.ASRService(riva_auth).offline_recognize(pcm, config)
    return " ".join(r.alternatives[0].transcript for r in response.results)


def test_boosting_fixes_a_business_name(riva_auth, spoken):
    plain = recognize(riva_auth, spoken, None)
    boosted = recognize(riva_auth, spoken, ["Fabrikam"])
    assert "fabrikam" not in plain.lower(), plain  # tiny.en alone hears "fabric camp"
    assert "Fabrikam" in boosted, boosted
    assert "escalate" in boosted.lower()


def test_negative_boost_is_no_hotword(riva_auth, spoken):
    assert "fabrikam" not in recognize_with_score(riva_auth, spoken, -10.0).lower()


def recognize_with_score(riva_auth, pcm: bytes, score: float) -> str:
    config = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000,
                                           language_code="en-US", enable_automatic_punctuation=True)
    riva_client.add_word_boosting_to_config(config, ["Fabrikam"], score)
    response = riva_client.ASRService(riva_auth).offline_recognize(pcm, config)
    return " ".join(r.alternatives[0].transcript for r in response.results)


def test_engine_setting_boosts_offline_and_streaming(riva_settings, spoken):
    import numpy as np

    audio = np.frombuffer(spoken, dtype="<i2").astype(np.float32) / 32768.0
    engine = RivaEngine(riva_settings.model_copy(update={"riva_boosted_words": "Fabrikam:20, Contoso:20"}))
    assert "Fabrikam" in " ".join(s.text for s in engine.transcribe(audio))
    finals = [r.text for r in engine.transcribe_stream([spoken[i:i + 3200] for i in range(0, len(spoken), 3200)],
                                                       interim_results=False) if r.is_final]
    assert "Fabrikam" in " ".join(finals), finals
