"""Commands of the speech package: `riva-serve`, `riva-check`, `transcribe`, `tts`.
Mounted on the main `callsense` app by `register(app)`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from callsense.config import Settings

console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _speech_errors():
    from callsense.asr.base import AsrUnavailable
    from callsense.asr.riva_server.server import RivaServeError
    from callsense.asr.tts.base import TtsUnavailable
    from callsense.ingest.errors import BadInput
    from callsense.registry import UnknownBackend

    return (AsrUnavailable, TtsUnavailable, RivaServeError, UnknownBackend, BadInput)


def riva_serve(
    port: Optional[int] = typer.Option(None, help="Port to listen on (default CALLSENSE_RIVA_SERVE_PORT, 50051 like Riva; 0 picks a free one)."),
    host: Optional[str] = typer.Option(None, help="Address to listen on (default CALLSENSE_RIVA_SERVE_HOST, 127.0.0.1; 0.0.0.0 for other machines)."),
    workers: Optional[int] = typer.Option(None, help="gRPC threads: calls and streams served at once (default CALLSENSE_RIVA_SERVE_WORKERS)."),
    ssl_cert: Optional[Path] = typer.Option(None, help="Serve TLS with this certificate (PEM); needs --ssl-key."),
    ssl_key: Optional[Path] = typer.Option(None, help="Private key (PEM) of --ssl-cert."),
    api_key: Optional[str] = typer.Option(None, envvar="CALLSENSE_RIVA_SERVE_API_KEY",
                                          help="Require `authorization: Bearer KEY` metadata on every call (health checks excepted)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every model load and request problem."),
):
    """Serve the NVIDIA Riva gRPC API (ASR, TTS, text classification, health) on CPU with the embedded engines.

    Riva clients (`riva.client`, NVIDIA's scripts, CALLSENSE_ASR_ENGINE=riva) work against it unchanged.
    Stops on SIGINT/SIGTERM.
    """
    from rich.logging import RichHandler

    from callsense.asr.riva_server.server import RivaServer, TlsFiles

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)
    if not verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if (ssl_cert is None) != (ssl_key is None):
        _fail("--ssl-cert and --ssl-key go together")
    settings = _settings()
    tls = TlsFiles(ssl_cert, ssl_key) if ssl_cert and ssl_key else None
    server = RivaServer(settings, host=host, port=port, workers=workers, tls=tls, api_key=api_key)
    try:
        with console.status("Loading models (speech recognition, voice activity, speech synthesis) ..."):
            server.start()
    except _speech_errors() as e:
        _fail(str(e))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"riva-serve listening on [bold]{server.address}[/] ({'TLS' if tls else 'plaintext'}, "
                  f"{server.workers} threads; ASR {server.asr_model_id}, TTS {server.tts_model_id}); "
                  f"point clients at it with CALLSENSE_RIVA_URL={server.address}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    stop.wait()
    console.print("riva-serve stopping ...")
    server.stop()


def riva_check(
    url: Optional[str] = typer.Option(None, help="Riva server host:port (default CALLSENSE_RIVA_URL)."),
):
    """Check a Riva server (real or riva-serve): health, and the ASR, TTS and NLP models it serves."""
    from callsense.asr.base import AsrUnavailable
    from callsense.asr.engines.riva import RivaConnection, server_models

    settings = _settings(riva_url=url)
    try:
        conn = RivaConnection(settings)
    except AsrUnavailable as e:
        _fail(str(e))
    import grpc
    import riva.client.proto.health_pb2 as health_pb
    import riva.client.proto.health_pb2_grpc as health_grpc
    import riva.client.proto.riva_nlp_pb2 as nlp_pb
    import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc

    try:
        status = health_grpc.HealthStub(conn.auth.channel).Check(
            health_pb.HealthCheckRequest(), metadata=conn.auth.get_auth_metadata(), timeout=min(settings.riva_timeout_s, 10))
    except grpc.RpcError as e:
        _fail(f"Riva at {settings.riva_url} does not answer: {e.code().name}: {' '.join((e.details() or '').split())} "
              "(is it running? CALLSENSE_RIVA_URL)")
    console.print(f"Riva at [bold]{settings.riva_url}[/]: {health_pb.HealthCheckResponse.ServingStatus.Name(status.status)}", highlight=False)
    for kind in ("asr", "tts"):
        models = server_models(conn, kind)
        console.print(f"{kind.upper()} models:" + ("" if models else " (none, or the server cannot list them)"))
        for name, params in models or []:
            console.print(f"  {name}  " + " ".join(f"{k}={v}" for k, v in sorted(params.items())), highlight=False)
    try:
        nlp = nlp_grpc.RivaLanguageUnderstandingStub(conn.auth.channel).GetRivaNLPConfig(
            nlp_pb.RivaNLPConfigRequest(), metadata=conn.auth.get_auth_metadata(), timeout=min(settings.riva_timeout_s, 10))
        console.print("NLP models:" + ("" if nlp.model_config else " (none)"))
        for m in nlp.model_config:
            console.print(f"  {m.model_name}  " + " ".join(f"{k}={v}" for k, v in sorted(m.parameters.items())), highlight=False)
    except grpc.RpcError:
        console.print("NLP models: (the server cannot list them)")


def transcribe(
    file: Path = typer.Argument(..., help="An audio file (any format FFmpeg reads); each channel is transcribed separately."),
    engine: Optional[str] = typer.Option(None, help="ASR engine: whisper, riva, nemo (default CALLSENSE_ASR_ENGINE)."),
    stream: bool = typer.Option(False, help="riva engine only: stream the audio in 100 ms chunks and print interim and final results."),
    words: bool = typer.Option(False, help="Print word times too."),
):
    """Transcribe one file with the configured ASR engine and print the segments."""
    from callsense.asr.base import create_asr_engine
    from callsense.ingest.convert import decode_audio

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    settings = _settings(asr_engine=engine)
    try:
        data = file.read_bytes()
    except OSError as e:
        _fail(f"cannot read {file}: {e.strerror}")
    try:
        channels = decode_audio(data, settings.decoder).channels
        if stream and settings.asr_engine == "riva":
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


def register(app: typer.Typer) -> None:
    app.command("riva-serve")(riva_serve)
    app.command("riva-check")(riva_check)
    app.command("transcribe")(transcribe)
    app.command("tts")(tts)
