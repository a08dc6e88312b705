"""`callsense riva-serve` and `callsense riva-check`. Mounted on the main app by `register(app)`."""

from __future__ import annotations

import ipaddress
import logging
import signal
import sys
import threading
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


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _speech_errors():
    from callsense.asr.base import AsrUnavailable
    from callsense.asr.tts.base import TtsUnavailable
    from callsense.core.errors import BadInput
    from callsense.core.registry import UnknownBackend
    from callsense.serve.riva.server import RivaServeError

    return (AsrUnavailable, TtsUnavailable, RivaServeError, UnknownBackend, BadInput)


def riva_serve(
    port: Optional[int] = typer.Option(None, min=0, max=65535,
                                       help="Port to listen on (default CALLSENSE_RIVA_SERVE_PORT, 50051 like Riva; 0 picks a free one)."),
    host: Optional[str] = typer.Option(None, help="Address to listen on (default CALLSENSE_RIVA_SERVE_HOST, 127.0.0.1; 0.0.0.0 for other machines)."),
    workers: Optional[int] = typer.Option(None, help="gRPC threads: calls and streams served at once (default CALLSENSE_RIVA_SERVE_WORKERS)."),
    ssl_cert: Optional[Path] = typer.Option(None, help="Serve TLS with this certificate (PEM); needs --ssl-key."),
    ssl_key: Optional[Path] = typer.Option(None, help="Private key (PEM) of --ssl-cert."),
    api_key: Optional[str] = typer.Option(None, envvar="CALLSENSE_RIVA_SERVE_API_KEY",
                                          help="Require `authorization: Bearer KEY` metadata on every call (health checks excepted)."),
    insecure: bool = typer.Option(False, "--insecure", help="Allow a non-loopback address without TLS or an API key "
                                                            "(anyone who reaches the port can use the server)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every model load and request problem."),
):
    """Serve the NVIDIA Riva gRPC API (ASR, TTS, text classification, health) on CPU with the embedded engines.

    Riva clients (`riva.client`, NVIDIA's scripts, CALLSENSE_ASR_ENGINE=riva) work against it unchanged.
    Stops on SIGINT/SIGTERM.
    """
    from rich.logging import RichHandler

    from callsense.serve.riva.server import RivaServer, TlsFiles

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)], force=True)
    if not verbose:
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if (ssl_cert is None) != (ssl_key is None):
        _fail("--ssl-cert and --ssl-key go together")
    settings = _settings()
    tls = TlsFiles(ssl_cert, ssl_key) if ssl_cert and ssl_key else None
    listen = host or settings.riva.serve_host
    if not is_loopback(listen) and (tls is None or not api_key):
        missing = " and ".join(w for w, ok in (("TLS (--ssl-cert/--ssl-key)", tls), ("an API key (--api-key)", api_key)) if not ok)
        if not insecure:
            _fail(f"refusing to serve on {listen} without {missing}: anyone who reaches it could use the server; "
                  "add them, listen on 127.0.0.1, or pass --insecure")
        err.print(f"[bold yellow]warning:[/] serving on {listen} without {missing} (--insecure)", highlight=False)
    server = RivaServer(settings, host=host, port=port, workers=workers, tls=tls, api_key=api_key)
    try:
        with console.status("Loading models (speech recognition, voice activity, speech synthesis) ..."):
            server.start()
    except _speech_errors() as e:
        _fail(str(e))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    console.print(f"riva-serve listening on [bold]{server.address}[/] ({'TLS' if tls else 'plaintext'}, "
                  f"{server.workers} threads; ASR {server.asr_model_id}, TTS {server.tts_model_id}); "
                  f"point clients at it with CALLSENSE_RIVA_URL={server.address}", highlight=False, soft_wrap=True)
    sys.stdout.flush()
    stop.wait()
    console.print("riva-serve stopping ...")
    try:
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def riva_check(
    url: Optional[str] = typer.Option(None, help="Riva server host:port (default CALLSENSE_RIVA_URL)."),
):
    """Check a Riva server (real or riva-serve): health, and the ASR, TTS and NLP models it serves."""
    from callsense.asr.engines.riva import server_models
    from callsense.core.riva_client import RivaConnection, RivaSetupError

    settings = _settings(riva_url=url)
    try:
        conn = RivaConnection(settings)
    except RivaSetupError as e:
        _fail(str(e))
    import grpc
    import riva.client.proto.health_pb2 as health_pb
    import riva.client.proto.health_pb2_grpc as health_grpc
    import riva.client.proto.riva_nlp_pb2 as nlp_pb
    import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc

    try:
        status = health_grpc.HealthStub(conn.auth.channel).Check(
            health_pb.HealthCheckRequest(), metadata=conn.auth.get_auth_metadata(), timeout=min(settings.riva.timeout_s, 10))
    except grpc.RpcError as e:
        _fail(f"Riva at {settings.riva.url} does not answer: {e.code().name}: {' '.join((e.details() or '').split())} "
              "(is it running? CALLSENSE_RIVA_URL)")
    console.print(f"Riva at [bold]{settings.riva.url}[/]: {health_pb.HealthCheckResponse.ServingStatus.Name(status.status)}", highlight=False)
    for kind in ("asr", "tts"):
        models = server_models(conn, kind)
        console.print(f"{kind.upper()} models:" + ("" if models else " (none, or the server cannot list them)"))
        for name, params in models or []:
            console.print(f"  {name}  " + " ".join(f"{k}={v}" for k, v in sorted(params.items())), highlight=False)
    try:
        nlp = nlp_grpc.RivaLanguageUnderstandingStub(conn.auth.channel).GetRivaNLPConfig(
            nlp_pb.RivaNLPConfigRequest(), metadata=conn.auth.get_auth_metadata(), timeout=min(settings.riva.timeout_s, 10))
        console.print("NLP models:" + ("" if nlp.model_config else " (none)"))
        for m in nlp.model_config:
            console.print(f"  {m.model_name}  " + " ".join(f"{k}={v}" for k, v in sorted(m.parameters.items())), highlight=False)
    except grpc.RpcError:
        console.print("NLP models: (the server cannot list them)")



def register(app: typer.Typer) -> None:
    app.command("riva-serve")(riva_serve)
    app.command("riva-check")(riva_check)
