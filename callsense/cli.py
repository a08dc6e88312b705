"""The `callsense` command line."""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from callsense.config import Settings

app = typer.Typer(
    help="callsense: call audio -> transcripts -> sentence sentiment, in batch or live over Kafka.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(help="Run a single-node Kafka broker on this machine for development.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka-local")

console = Console()
err = Console(stderr=True)


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _setup_logging(level: int) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)], force=True)


def _known_errors():
    from callsense.asr.base import AsrUnavailable
    from callsense.ingest.transports.kafka import BrokerUnavailable
    from callsense.nlp.sentiment.base import SentimentUnavailable
    from callsense.registry import UnknownBackend

    return (AsrUnavailable, SentimentUnavailable, BrokerUnavailable, UnknownBackend)


@app.command()
def process(
    files: List[Path] = typer.Argument(..., help="Audio files or folders (MP3, WAV, FLAC, OGG, M4A; one speaker per channel)."),
    agent: Optional[str] = typer.Option(None, help="Agent id to attach to these calls."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: SQLite in the data dir, or CALLSENSE_DATABASE_URL)."),
):
    """Process recorded calls in this process (embedded mode: no Kafka, no GPU) and print a summary per call."""
    from sqlalchemy.exc import OperationalError

    from callsense.ingest.errors import BadInput
    from callsense.ingest.pipeline import PipelineResources, build_stage
    from callsense.ingest.sources import expand_inputs, recorded_call
    from callsense.ingest.stage import STAGE_ORDER
    from callsense.ingest.transports.inprocess import InProcessTransport
    from callsense.store.db import describe_url

    _setup_logging(logging.WARNING)
    settings = _settings(database_url=database_url)
    paths = expand_inputs(files)
    if not paths:
        _fail("no audio files found in the given paths")
    res = PipelineResources(settings)
    rows = []
    try:
        with console.status("Loading models (speech recognition, sentiment) ..."):
            transport = InProcessTransport([build_stage(n, res) for n in STAGE_ORDER])
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("Processing calls", total=len(paths))
            for path in paths:
                bar.update(task, description=f"Processing {path.name}")
                t0 = time.perf_counter()
                try:
                    ev = recorded_call(path, res.blobs, agent_id=agent)
                except BadInput as e:
                    rows.append((path.name, None, f"skipped: {e}", time.perf_counter() - t0))
                    bar.advance(task)
                    continue
                transport.publish([ev])
                transport.drain()
                rows.append((path.name, ev.call_id, None, time.perf_counter() - t0))
                bar.advance(task)
    except _known_errors() as e:
        _fail(str(e))
    except OperationalError as e:
        _fail(f"cannot write to the store at {describe_url(settings.resolved_database_url)}: {e.orig}")
    _print_summaries(res.store, rows)
    console.print(f"\nResults stored in [bold]{describe_url(settings.resolved_database_url)}[/]")
    console.print("Read them back with [bold]callsense calls[/] and [bold]callsense show CALL_ID[/]; "
                  "open the dashboard with [bold]callsense dashboard[/] (then http://localhost:8501).")


def _print_summaries(store, rows) -> None:
    table = Table(title="Calls processed", title_justify="left")
    table.add_column("call id")
    table.add_column("speakers")
    table.add_column("sentences", justify="right")
    table.add_column("neg/neu/pos", justify="right")
    table.add_column("audio", justify="right")
    table.add_column("took", justify="right")
    table.add_column("status")
    problems = []
    for name, call_id, problem, took in rows:
        summary = store.summary(call_id) if call_id else None
        if summary is None or summary.call.status == "failed":
            problems.append(f"[red]x[/] {name}: {problem or summary.call.error}")
            continue
        call, counts = summary.call, summary.counts()
        table.add_row(call.id, call.speakers.replace(",", ", "), str(summary.sentences),
                      f"[red]{counts['negative']}[/]/{counts['neutral']}/[green]{counts['positive']}[/]",
                      f"{call.duration_s or 0:.1f} s", f"{took:.1f} s", call.status)
    if table.row_count:
        console.print(table)
    for line in problems:
        console.print(line)


@app.command()
def produce(
    files: List[Path] = typer.Argument(..., help="Recorded calls to publish."),
    agent: Optional[str] = typer.Option(None, help="Agent id to attach to these calls."),
):
    """Publish recorded calls to Kafka (audio by claim-check in the shared blob store)."""
    from callsense.ingest.errors import BadInput
    from callsense.ingest.pipeline import PipelineResources
    from callsense.ingest.sources import expand_inputs, recorded_call
    from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

    settings = _settings()
    res = PipelineResources(settings)
    try:
        ensure_topics(settings)
        pub = KafkaPublisher(settings)
    except _known_errors() as e:
        _fail(str(e))
    for path in expand_inputs(files):
        try:
            ev = recorded_call(path, res.blobs, agent_id=agent)
        except BadInput as e:
            err.print(f"[yellow]skipped[/] {path}: {e}")
            continue
        pub.publish([ev])
        console.print(f"published {path.name} as call [bold]{ev.call_id}[/]")
    pub.flush()
    pub.close()


@app.command("stream-live")
def stream_live(
    file: Path = typer.Argument(..., help="A recording to play as a live call."),
    call_id: Optional[str] = typer.Option(None, help="Call id (default: a new one)."),
    agent: Optional[str] = typer.Option(None, help="Agent id."),
    chunk_ms: int = typer.Option(100, help="Chunk length in milliseconds."),
    encoding: str = typer.Option("s16le", help="s16le or mulaw (telephony)."),
    rate: int = typer.Option(16000, help="Sample rate to send (8000 for telephony)."),
    realtime: bool = typer.Option(True, help="Pace chunks at real time (--no-realtime sends at once)."),
):
    """Publish a file to Kafka as a live call: ordered chunks keyed by call id, at real-time pace."""
    from callsense.ingest.errors import BadInput
    from callsense.ingest.sources import live_chunks
    from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

    settings = _settings()
    call_id = call_id or f"live-{uuid.uuid4().hex[:10]}"
    try:
        ensure_topics(settings)
        pub = KafkaPublisher(settings)
    except _known_errors() as e:
        _fail(str(e))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"Streaming {file.name} as {call_id}", total=None)
            for chunk in live_chunks(file, call_id=call_id, chunk_ms=chunk_ms, agent_id=agent, encoding=encoding,
                                     sample_rate=rate, realtime=realtime):
                pub.publish([chunk])
                bar.advance(task)
    except (BadInput, OSError) as e:
        _fail(f"{file}: {e}")
    pub.flush()
    pub.close()
    console.print(f"streamed {file.name} as live call [bold]{call_id}[/]")


@app.command()
def worker(
    stages: Optional[str] = typer.Option(None, help="Comma-separated stages (segment,live-transcribe,transcribe,sentiment,store) "
                                                      "or 'all' (live-transcribe only with CALLSENSE_LIVE_ASR=riva-streaming). "
                                                      "Default: CALLSENSE_WORKER_STAGES."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Run pipeline stages as Kafka consumers until interrupted (SIGINT/SIGTERM)."""
    from callsense.ingest.pipeline import PipelineResources, build_stage, parse_stage_names
    from callsense.ingest.transports.kafka import run_worker

    _setup_logging(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # kafka-python logs every connection and rebalance at INFO.
        logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = _settings()
    try:
        names = parse_stage_names(stages or settings.worker_stages, settings.live_asr)
    except ValueError as e:
        _fail(str(e))
    if settings.live_asr == "riva-streaming" and "segment" in names and "live-transcribe" not in names:
        logging.getLogger("callsense").warning(
            "CALLSENSE_LIVE_ASR=riva-streaming: this worker's segment stage skips live calls; "
            "run the live-transcribe stage in some worker (--stages all includes it)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    res = PipelineResources(settings)
    try:
        built = [build_stage(n, res) for n in names]
        logging.getLogger("callsense").info("worker running %s against %s", ", ".join(names), settings.kafka_bootstrap)
        run_worker(settings, built, stop)
    except _known_errors() as e:
        _fail(str(e))


@app.command()
def calls(
    limit: int = typer.Option(30, help="How many calls, newest first."),
    agent: Optional[str] = typer.Option(None, help="Only this agent's calls."),
):
    """List stored calls."""
    from callsense.ingest.pipeline import PipelineResources

    store = PipelineResources(_settings()).store
    items = store.list_calls(limit=limit, agent_id=agent)
    if not items:
        console.print("No calls yet: run `callsense process FILES...` (or stream some with `callsense stream-live`).")
        return
    table = Table()
    for col in ("call id", "source", "mode", "agent", "status", "duration", "started"):
        table.add_column(col)
    for c in items:
        table.add_row(c.id, c.source_name, c.mode, c.agent_id or "", c.status, f"{c.duration_s or 0:.1f} s",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.started_at)))
    console.print(table)


SENTIMENT_STYLE = {"negative": "red", "neutral": "white", "positive": "green"}


@app.command()
def show(call_id: str = typer.Argument(..., help="A call id from `callsense calls`.")):
    """Print one call's transcript with each sentence's sentiment."""
    from callsense.ingest.pipeline import PipelineResources

    store = PipelineResources(_settings()).store
    summary = store.summary(call_id)
    if summary is None:
        _fail(f"no call '{call_id}' in the store (list them with `callsense calls`)")
    call = summary.call
    console.print(f"[bold]{call.id}[/]  {call.source_name}  {call.mode}  status={call.status}  agent={call.agent_id or '-'}")
    if call.error:
        console.print(f"[red]{call.error}[/]")
    table = Table()
    for col in ("time", "speaker", "sentence", "sentiment", "conf"):
        table.add_column(col)
    for s in store.sentences(call_id):
        table.add_row(f"{s.start:6.1f}-{s.end:6.1f}", s.speaker, s.text,
                      f"[{SENTIMENT_STYLE[s.sentiment]}]{s.sentiment}[/]", f"{s.confidence:.2f}")
    console.print(table)
    for speaker, counts in summary.by_speaker.items():
        console.print(f"{speaker}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@app.command("dead-letters")
def dead_letters(limit: int = typer.Option(20)):
    """Inputs that could not be processed, and why."""
    from callsense.ingest.pipeline import PipelineResources

    items = PipelineResources(_settings()).store.dead_letters(limit)
    if not items:
        console.print("No dead letters.")
    for d in items:
        console.print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(d.at))}  {d.stage:<10} {d.call_id or '-':<24} {d.reason}")


@kafka_app.command("start")
def kafka_start(port: int = typer.Option(9092), controller_port: int = typer.Option(9093),
                home: Optional[Path] = typer.Option(None, help="Broker folder (default: data dir/kafka).")):
    """Fetch the broker from Maven Central (once) and start it in the background."""
    from callsense.ingest.broker import local

    with console.status("Starting Kafka (the first run fetches ~45 MB of jars through Maven) ..."):
        try:
            broker = local.LocalKafka(home=home or local.default_home(), port=port, controller_port=controller_port,
                                      jars=local.fetch_jars(local.default_jar_cache()))
            state = broker.start()
        except local.LocalKafkaError as e:
            _fail(str(e))
    console.print(f"Kafka is up at [bold]{state.bootstrap}[/] (pid {state.pid}); stop it with `callsense kafka-local stop`.")


def _known_broker(home: Optional[Path]):
    from callsense.ingest.broker import local

    home = home or local.default_home()
    port, controller = local.saved_ports(home) or (9092, 9093)
    return local.LocalKafka(home=home, port=port, controller_port=controller)


@kafka_app.command("stop")
def kafka_stop(home: Optional[Path] = typer.Option(None)):
    """Stop the broker started by `kafka-local start` (by its PID)."""
    stopped = _known_broker(home).stop()
    console.print("Kafka stopped." if stopped else "No local Kafka was running.")


@kafka_app.command("status")
def kafka_status(home: Optional[Path] = typer.Option(None)):
    """Is the local broker running?"""
    state = _known_broker(home).status()
    if state.running:
        console.print(f"running at {state.bootstrap} (pid {state.pid}), data in {state.home}")
    else:
        console.print(f"not running (home {state.home})")
        raise typer.Exit(3)


# Commands owned by other packages (dashboard, dialog, riva-serve, finetune) register
# themselves through `register(app)` in their package's cli module.
_COMMAND_MODULES = ("callsense.dashboard.cli", "callsense.dialog.cli", "callsense.asr.cli", "callsense.finetune.cli")


def _mount_package_commands() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(app)


_mount_package_commands()


def main() -> None:
    app()
