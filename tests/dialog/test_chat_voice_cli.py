"""`callsense chat --voice`: recorded turns in through Whisper (`--audio-in`), spoken replies
out through espeak-ng, as WAV files (`--audio-out`) or into the sound device's player
(a stand-in `paplay` on PATH records what it is sent)."""

from __future__ import annotations

import os
import stat
import wave
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from callsense.asr.tts.base import create_tts_engine
from callsense.cli import app
from callsense.core.settings import Settings
from callsense.dashboard.audio import encode_mp3
from callsense.store.dialog_tables import DialogTurn


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """The user's turns, spoken by espeak-ng: a WAV, an MP3, and a file that is not audio."""
    folder = tmp_path_factory.mktemp("turns")
    tts = create_tts_engine(Settings())
    weather = folder / "weather.wav"
    weather.write_bytes(tts.synthesize("What's the weather?").wav())
    place = tts.synthesize("In Los Angeles.")
    mp3 = folder / "los-angeles.mp3"
    mp3.write_bytes(encode_mp3(place.samples, place.sample_rate))
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF but then nothing an audio decoder could read")
    return {"weather": weather, "place": mp3, "broken": broken}


@pytest.fixture
def chat(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'chat.db'}"
    env = {"CALLSENSE_DATA_DIR": str(tmp_path / "data"), "CALLSENSE_DATABASE_URL": db_url,
           "CALLSENSE_NLU_BACKEND": "keywords", "COLUMNS": "200"}

    def invoke(*args: str, input: str | None = None, **extra_env: str):
        result = CliRunner().invoke(app, ["chat", *args], env={**env, **extra_env}, input=input, catch_exceptions=False)
        return result

    invoke.turns = lambda: _turns(db_url)
    return invoke


def _turns(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(DialogTurn).order_by(DialogTurn.turn)).all()
    finally:
        engine.dispose()


def wav_info(path: Path) -> tuple[int, float]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


def test_recorded_turns_in_spoken_replies_out_as_wav_files(chat, recordings, tmp_path):
    out = tmp_path / "replies"
    result = chat("--voice", "--session", "v-cli", "--audio-in", str(recordings["weather"]),
                  "--audio-in", str(recordings["broken"]), "--audio-in", str(recordings["place"]),
                  "--audio-out", str(out), "--debug")
    assert result.exit_code == 0, result.output
    output = result.output
    assert "ASR moonshine, TTS espeak, NLU keywords" in output
    assert "weather" in output.lower() and "(voice, ASR confidence 0." in output
    assert "For which location?" in output and "In Los Angeles today" in output
    assert f"{recordings['broken']}: cannot read the recording: " in output  # the bad file, and the next one still played
    assert "first reply audio after" in output
    # One WAV per reply: the greeting, then each answered turn.
    files = sorted(out.glob("*.wav"))
    assert [f.name for f in files] == ["v-cli-000.wav", "v-cli-001.wav", "v-cli-002.wav"]
    rates, lengths = zip(*(wav_info(f) for f in files))
    assert set(rates) == {22050} and lengths[0] > 3 and 0.5 < lengths[1] < 3 and lengths[2] > 3
    assert f"(spoken reply: {files[2]})" in output

    turns = chat.turns()
    assert [(t.channel, t.intent) for t in turns] == [("voice", "weather.weather"), ("voice", "nomatch.none")]
    assert turns[0].reply.endswith("For which location?") and turns[1].reply.startswith("In Los Angeles today")
    assert all(t.asr_confidence is not None and 0 < t.asr_confidence <= 1 for t in turns)


def test_typed_turns_with_replies_played_on_the_sound_device(chat, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    played = tmp_path / "played"
    fake_player(bin_dir / "paplay", played)
    result = chat("--voice", "--no-delays", input="what's the weather?\nAustin\n\n",
                  PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.exit_code == 0, result.output
    assert "For which location?" in result.output and "In Austin today" in result.output
    runs = sorted(played.glob("*.args"))
    assert len(runs) == 3  # greeting, question, answer: one player run per reply
    assert runs[0].read_text().split() == ["--raw", "--format=s16le", "--channels=1", "--rate=22050"]
    seconds = [Path(str(r)[:-5] + ".pcm").stat().st_size / 2 / 22050 for r in runs]
    assert seconds[0] > 3 and 0.5 < seconds[1] < 3 and seconds[2] > 2, seconds
    assert [t.channel for t in chat.turns()] == ["text", "text"]


def test_a_player_that_fails_is_one_line(chat, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_player(bin_dir / "paplay", tmp_path / "played", fail="Connection failure: Connection refused")
    result = chat("--voice", input="\n", PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.exit_code == 1
    assert "paplay cannot play the reply: Connection failure: Connection refused (--audio-out DIR writes" in result.output
    assert "Traceback" not in result.output


def test_voice_without_a_player_or_audio_out_says_what_to_do(chat, tmp_path, recordings):
    empty = tmp_path / "no-players"
    empty.mkdir()
    result = chat("--voice", input="\n", PATH=str(empty))
    assert result.exit_code == 1
    assert "no paplay or aplay to play the replies" in result.output and "--audio-out DIR" in result.output
    result = chat("--audio-in", str(tmp_path / "nothing.wav"))
    assert result.exit_code == 1 and "nothing.wav: no such file" in result.output


def test_help_says_there_is_no_microphone_in_the_terminal(chat):
    result = chat("--help")
    text = " ".join(result.output.split())
    assert "--audio-in" in text and "--audio-out" in text and "--voice" in text
    assert "The terminal has no microphone input" in text.replace("│ ", "")


def fake_player(path: Path, out: Path, fail: str | None = None) -> None:
    """A `paplay` that stores its arguments and the PCM it reads (one pair of files per run)."""
    out.mkdir(exist_ok=True)
    body = (f'echo "{fail}" >&2; cat > /dev/null; exit 1' if fail else
            f'n=$(date +%s%N); echo "$@" > "{out}/$n.args"; cat > "{out}/$n.pcm"')
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
