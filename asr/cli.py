"""Commands of the speech package: `transcribe`, `tts`.
Mounted on the main `callsense` app by `register(app)`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from callsense.core.settings import Settings

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _speech_errors():
    from callsense.asr.base import AsrUnavailable
    from callsense.asr.tts.base import TtsUnavailable
    from callsense.core.errors import BadInput
    from callsense.core.registry import UnknownBackend

    return (AsrUnavailable, TtsUnavailable, UnknownBackend, BadInput)


def transcribe(
    file: Path = typer.Argument(..., help="An audio file (any format FFmpeg reads); each channel is transcribed separately."),
    engine: Optional[str] = typer.Option(None, help="ASR engine: whisper, riva, nemo (default CALLSENSE_ASR_ENGINE)."),
    stream: bool = typer.Option(False, help="riva engine only: stream the audio in 100 ms chunks and print interim and final results."),
    words: bool = typer.Option(False, help="Print word times too."),
):
    """Transcribe one file with the configured ASR engine and print the segments."""
    from callsense.asr.base import create_asr_engine
    from callsense.audio.decode import decode_audio

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    settings = _settings(asr_engine=engine)
    try:
        data = file.read_bytes()
    except OSError as e:
        _fail(f"cannot read {file}: {e.strerror}")
    try:
        channels = decode_audio(data, settings.pipeline.decoder).channels
        if stream and settings.asr.engine == "riva":
            from callsense.asr.engines.riva import RivaEngine

            asr = RivaEngine(settings, streaming=True)  # the server's online model (CALLSENSE_RIVA_STREAMING_ASR_MODEL)
        else:
            asr = create_asr_engine(settings)
        if stream and not hasattr(asr, "transcribe_stream"):
            _fail(f"--stream needs the riva engine (this is {asr.name})")
        for c, audio in enumerate(channels):
            if len(channels) > 1:
                console.print(f"[bold]channel {c}[/]")
            t0 = time.perf_counter()
            if stream:
                chunks = (audio[i:i + 1600] for i in range(0, audio.size, 1600))
                for r in asr.transcribe_stream(chunks):
                    console.print(f"{'##' if r.is_final else '>>'} {r.text}" + ("" if r.is_final else f"  (stability {r.stability:.2f})"),
                                  highlight=False)
            else:
                for seg in asr.transcribe(audio):
                    console.print(f"[{seg.start:6.2f} - {seg.end:6.2f}] {seg.text}", highlight=False)
                    if words:
                        for w in seg.words:
                            console.print(f"      {w.start:6.2f} {w.end:6.2f} {w.probability:.2f} {w.text.strip()}", highlight=False)
            err.print(f"{asr.model_id}: {audio.size / 16000:.1f} s of audio in {time.perf_counter() - t0:.2f} s", highlight=False)
    except _speech_errors() as e:
        _fail(str(e))


def tts(
    text: str = typer.Argument(..., help="Text to speak."),
    output: Path = typer.Option(Path("speech.wav"), "--output", "-o", help="WAV file to write."),
    engine: Optional[str] = typer.Option(None, help="TTS engine: espeak (embedded) or riva (default CALLSENSE_TTS_ENGINE)."),
    voice: Optional[str] = typer.Option(None, help="Voice name (espeak-ng voice or Riva voice)."),
    rate: Optional[int] = typer.Option(None, help="Sample rate of the file (default: the engine's)."),
    list_voices: bool = typer.Option(False, "--list-voices", help="List the engine's voices and exit."),
):
    """Synthesize speech to a WAV file with the configured TTS engine."""
    from callsense.asr.tts.base import create_tts_engine

    settings = _settings(tts_engine=engine)
    try:
        synth = create_tts_engine(settings)
        if list_voices:
            for v in synth.voices():
                console.print(f"{v.name}\t{v.language}\t{v.gender}", highlight=False)
            return
        t0 = time.perf_counter()
        clip = synth.synthesize(text, voice=voice, sample_rate=rate) if text.strip() else None
    except _speech_errors() as e:
        _fail(str(e))
    if clip is None or clip.samples.size == 0:
        _fail("nothing to say: the text is empty")
    try:
        output.write_bytes(clip.wav())
    except OSError as e:
        _fail(f"cannot write {output}: {e.strerror}")
    console.print(f"wrote {output} ({clip.duration_s:.1f} s at {clip.sample_rate} Hz, {synth.model_id}, "
                  f"{time.perf_counter() - t0:.2f} s)", highlight=False)


asr_app = typer.Typer(help="Speech recognition models: build the ones made from pinned packages.", no_args_is_help=True)


@asr_app.command("build-moonshine")
def build_moonshine(
    out: Optional[Path] = typer.Option(None, help="Output folder (default: CALLSENSE_MODEL_CACHE_DIR/moonshine-base-en-int8)."),
):
    """Convert Moonshine base-en (MIT, in the pinned moonshine-cpp wheel) to int8 ONNX for the
    `moonshine` engine: deterministic, checked against pinned sha256s, ~10-20 s, done once."""
    from callsense.asr.base import AsrUnavailable
    from callsense.asr.engines.moonshine_build import build_lock, build_moonshine_model, default_model_dir

    folder = out or default_model_dir(_settings())
    try:
        with build_lock(folder):
            build_moonshine_model(folder, progress=lambda msg: console.print(msg, highlight=False))
    except AsrUnavailable as e:
        _fail(str(e))


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
    app.command("tts")(tts)
    app.add_typer(asr_app, name="asr")
