"""The voice channel on real engines: questions spoken by espeak-ng, heard by Whisper
tiny.en, answered by the assistant, the reply spoken again; every voice turn archived with
its ASR confidence. The Riva path runs against a real `riva-serve` on a loopback port."""

from __future__ import annotations

import io
import re
import wave

import numpy as np
import pytest
from sqlalchemy import select

from callsense.asr.base import create_asr_engine
from callsense.audio.encode import encode_ogg_opus
from callsense.asr.tts.base import SynthesizedAudio, create_tts_engine
from callsense.core.settings import Settings
from callsense.dialog.engine import Reply
from callsense.dialog.voice import (REPEAT_PLEASE, Heard, VoiceAssistant, VoiceInputError, VoiceTurn, VoiceUnavailable,
                                    decode_speech)
from callsense.store.dialog_tables import DialogTurn

LA_TODAY = "In Los Angeles today: sunny, a high of 79°F and a low of 61°F."  # the offline table on TEST_DAY


@pytest.fixture(scope="module")
def asr():
    return create_asr_engine(Settings())  # the embedded default: Moonshine base-en


@pytest.fixture(scope="module")
def tts():
    return create_tts_engine(Settings())  # the embedded default: espeak-ng


@pytest.fixture
def voice(make_assistant, asr, tts):
    return VoiceAssistant(assistant=make_assistant(), asr=asr, tts=tts)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^\w' ]+", " ", text.lower()).split())


def spoken(tts, text: str) -> bytes:
    """A user's question as a WAV recording (espeak-ng at 22,050 Hz, as a browser might send 48 kHz)."""
    return tts.synthesize(text).wav()


def archived(db) -> list:
    with db.connect() as conn:
        return conn.execute(select(DialogTurn).order_by(DialogTurn.session_id, DialogTurn.turn)).all()


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def test_a_spoken_question_is_heard_answered_spoken_and_archived(voice, tts, dialog_db):
    turn = voice.voice_turn("v1", spoken(tts, "How much is laptop memory in Seattle?"))
    assert "laptop memory" in words(turn.transcript) and "seattle" in words(turn.transcript), turn.transcript
    assert 0.0 < turn.asr_confidence <= 1.0
    assert turn.reply.intent == "price_check" and turn.reply.slots.get("location") == "seattle"
    assert "Seattle" in turn.reply.text and "$" in turn.reply.text
    # The reply is spoken: a WAV file as long as the text needs (the greeting comes first on a new session).
    assert turn.audio[:4] == b"RIFF" and turn.sample_rate == 22050 and wav_seconds(turn.audio) > 5.0
    t = turn.timings
    assert t.asr_ms > 0 and t.dialog_ms > 0 and t.tts_first_ms > 0
    assert t.first_audio_ms >= t.asr_ms + t.dialog_ms and t.first_audio_ms <= t.total_ms + 1

    (row,) = archived(dialog_db)
    assert (row.session_id, row.channel, row.text, row.intent) == ("v1", "voice", turn.transcript, "price_check")
    assert row.asr_confidence == pytest.approx(turn.asr_confidence) and row.reply == turn.reply.text


def test_wp7328_weather_conversation_by_voice(voice, asr, tts, dialog_db):
    """What's the weather? -> For which location? -> In Los Angeles -> the forecast."""
    greeting = voice.greet("wx")
    assert greeting.reply.text.startswith("Hi, I'm NARA") and wav_seconds(greeting.audio) > 3

    first = voice.voice_turn("wx", spoken(tts, "What's the weather?"))
    assert "weather" in words(first.transcript)
    assert first.reply.intent == "weather.weather" and first.reply.text == "For which location?"
    assert first.reply.state == "weather_input_location"

    second = voice.voice_turn("wx", spoken(tts, "In Los Angeles."))
    assert "los angeles" in words(second.transcript)
    assert second.reply.text == LA_TODAY and second.reply.slots == {"location": "los angeles"}
    assert second.reply.state == "input_intent"
    # The reply audio says the reply: Whisper hears it back.
    heard_back = " ".join(s.text for s in asr.transcribe(decode_speech(second.audio)))
    assert "los angeles" in words(heard_back) and "sunny" in words(heard_back), heard_back

    rows = archived(dialog_db)
    assert [(r.turn, r.channel, r.intent) for r in rows] == [(1, "voice", "weather.weather"), (2, "voice", "nomatch.none")]
    assert [r.asr_confidence for r in rows] == [pytest.approx(first.asr_confidence), pytest.approx(second.asr_confidence)]
    assert all(0 < r.asr_confidence <= 1 for r in rows) and rows[1].reply == LA_TODAY


def test_any_recording_format_and_raw_samples(voice, tts):
    clip = tts.synthesize("Will it rain tomorrow in Seattle?")
    ogg = encode_ogg_opus(clip.samples, clip.sample_rate)  # 48 kHz Opus, as a phone app might upload
    assert ogg[:4] == b"OggS"
    by_ogg = voice.voice_turn("fmt", ogg)
    stereo16k = np.stack([clip.resampled(16000).samples] * 2)  # (channels, samples) at 16 kHz
    by_array = voice.voice_turn("fmt", stereo16k, spoken=False)
    for turn in (by_ogg, by_array):
        # (Moonshine, the default engine, may hear espeak's "tomorrow" as "to my wrong".)
        assert {"rain", "seattle"} <= set(words(turn.transcript).split()), turn.transcript
        assert turn.reply.slots.get("location") == "seattle"
    assert by_array.audio is None and by_array.timings.first_audio_ms is None  # not spoken when not asked


def test_unreadable_audio_is_one_clear_line_and_no_turn(voice, tmp_path, dialog_db):
    cases = [
        (b"this is not audio at all", "cannot read the recording: not an audio file"),
        (b"", "cannot read the recording: empty file"),
        (tmp_path / "missing.wav", "cannot read .*missing.wav: No such file"),
        (np.zeros(61 * 16000, np.float32), "the recording is 61 s long; one turn is at most 60 s"),
        (np.zeros((2, 2, 2), np.float32), "one or two dimensional"),
        (12345, "cannot use int as audio"),
    ]
    for audio, message in cases:
        with pytest.raises(VoiceInputError, match=message) as info:
            voice.voice_turn("bad", audio)
        assert "\n" not in str(info.value)
    assert archived(dialog_db) == []


class CountingAsr:
    """The real ASR engine, counting what is sent to it."""

    def __init__(self, engine):
        self.engine, self.calls = engine, 0

    def transcribe(self, audio, *args, **kwargs):
        self.calls += 1
        return self.engine.transcribe(audio, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.engine, name)


def test_silence_asks_to_say_it_again_without_moving_the_conversation(make_assistant, asr, tts, dialog_db):
    counting = CountingAsr(asr)
    voice = VoiceAssistant(assistant=make_assistant(), asr=counting, tts=tts)
    voice.text_turn("quiet", "what's the weather?", spoken=False)
    noise = np.random.default_rng(1).normal(0, 0.003, 2 * 16000).astype(np.float32)
    for recording in (np.zeros(2 * 16000, np.float32), noise, SynthesizedAudio(noise, 16000).wav()):
        turn = voice.voice_turn("quiet", recording)
        assert turn.heard_nothing and turn.transcript == "" and turn.asr_confidence is None
        assert turn.reply.text == REPEAT_PLEASE and turn.reply.state == "weather_input_location"
        assert wav_seconds(turn.audio) > 1.0  # the request to repeat is spoken too
    assert counting.calls == 0  # nothing was sent to the ASR engine
    assert [(r.channel, r.text) for r in archived(dialog_db)] == [("text", "what's the weather?")]
    # The conversation still waits for the location.
    assert voice.voice_turn("quiet", spoken(tts, "In Los Angeles.")).reply.text == LA_TODAY
    assert counting.calls == 1  # speech is sent


def test_stream_turn_yields_each_step_as_soon_as_it_exists(voice, dialog_db):
    events = list(voice.stream_turn("st", text="will it rain next week in Los Angeles?"))
    assert isinstance(events[0], Reply) and isinstance(events[-1], VoiceTurn)
    chunks = events[1:-1]
    # New session: the greeting's two sentences and the answer, one chunk per sentence.
    assert len(chunks) >= 3 and all(isinstance(c, SynthesizedAudio) and c.sample_rate == 22050 for c in chunks)
    assert chunks[0].text == "Hi, I'm NARA, your retail assistant."
    turn = events[-1]
    total = sum(c.samples.size for c in chunks) / 22050
    assert wav_seconds(turn.audio) == pytest.approx(total, abs=0.01)
    assert turn.timings.first_audio_ms < turn.timings.total_ms  # the first sentence was ready before the rest
    (row,) = archived(dialog_db)
    assert row.channel == "text" and row.asr_confidence is None  # typed, with a spoken reply

    heard = list(voice.stream_turn("st", audio=np.zeros(16000, np.float32), spoken=False))
    assert [type(e) for e in heard] == [Heard, Reply, VoiceTurn] and heard[0].nothing


def test_engines_that_cannot_load_or_answer_are_one_line(make_assistant, dialog_settings, tts, pick_ports):
    def make(**overrides) -> VoiceAssistant:
        return VoiceAssistant(dialog_settings.model_copy(update=overrides), assistant=make_assistant())

    from callsense.asr.base import asr_engines

    names = ", ".join(asr_engines.names())
    with pytest.raises(VoiceUnavailable, match=r"speech recognition \('nope', CALLSENSE_ASR_ENGINE\) is unavailable: "
                                               rf"unknown ASR engine 'nope'; choose one of: {names}$"):
        make(asr_engine="nope").voice_turn("e", spoken(tts, "Hello there."))
    with pytest.raises(VoiceUnavailable, match="sha256") as info:
        make(asr_engine="whisper", whisper_model_sha256="0" * 64).preload()
    assert "\n" not in str(info.value)
    pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
    dead = f"127.0.0.1:{pick_ports(1)[0]}"
    with pytest.raises(VoiceUnavailable, match=f"speech recognition \\('riva'.*Riva ASR at {dead}.*unavailable") as info:
        make(asr_engine="riva", riva_url=dead, riva_retries=0).preload()
    assert "\n" not in str(info.value)

    # A TTS engine that fails leaves the reply (archived) as text, saying why.
    mute = make(espeak_voice="xx-nope")
    turn = mute.text_turn("e", "what's the weather?")
    assert turn.reply.text.endswith("For which location?") and turn.audio is None
    assert turn.speech_error.startswith("speech synthesis ('espeak', CALLSENSE_TTS_ENGINE) is unavailable: "
                                        "espeak-ng has no voice 'xx-nope'")


def test_the_riva_path_when_a_riva_server_is_configured(riva_server, make_assistant, dialog_settings, tts, dialog_db):
    settings = dialog_settings.model_copy(update={"asr_engine": "riva", "tts_engine": "riva", "riva_url": riva_server.address,
                                                  "riva_retries": 1, "riva_timeout_s": 120})
    voice = VoiceAssistant(settings, assistant=make_assistant())
    assert voice.describe() == f"ASR riva, TTS riva at {riva_server.address}, NLU keywords"
    turn = voice.voice_turn("riva", spoken(tts, "What's the weather?"))
    assert voice.asr.name == "riva" and voice.tts.name == "riva"
    assert "weather" in words(turn.transcript) and turn.reply.text.endswith("For which location?")
    assert turn.audio[:4] == b"RIFF" and wav_seconds(turn.audio) > 3
    (row,) = archived(dialog_db)
    assert row.channel == "voice" and row.text == turn.transcript
    assert row.asr_confidence is not None and row.asr_confidence == pytest.approx(turn.asr_confidence)
