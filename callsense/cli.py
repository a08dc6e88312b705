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
from rich.markup import escape
from rich.table import Table

from callsense.core.settings import Settings

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
    """One rich handler of ours on the root logger. Only our own earlier handler is replaced
    (a command run twice in one process, e.g. under a test runner, keeps the others)."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "callsense_cli", False)]:
        root.removeHandler(old)
        old.close()
    handler = RichHandler(console=err, show_path=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.callsense_cli = True
    root.addHandler(handler)
    root.setLevel(level)


def _known_errors():
    from callsense.asr.base import AsrUnavailable
    from callsense.ingest.transports.kafka import BrokerUnavailable
    from callsense.nlp.sentiment.base import SentimentUnavailable
    from callsense.core.registry import UnknownBackend
    from callsense.nlp.categories import CategoryRulesError

    return (AsrUnavailable, SentimentUnavailable, BrokerUnavailable, UnknownBackend, CategoryRulesError)


# `callsense process` exit statuses (documented in its --help).
EXIT_SOME_REFUSED = 3
# A dependency (broker, database) stayed away longer than its give-up setting (EX_TEMPFAIL).
EXIT_OUTAGE = 75


def _gave_up(message: str) -> None:
    """One line on stderr and EXIT_OUTAGE: no traceback."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(EXIT_OUTAGE)


def _embedded_transport(settings, res):
    """All stages in this process (`process`, `import-dataset`), waiting through a database or
    service outage at start as during the run; raises OutageGaveUp past the give-up time."""
    from sqlalchemy.exc import OperationalError

    from callsense.ingest.pipeline import build_stage
    from callsense.ingest.stage import STAGE_ORDER
    from callsense.ingest.transports.inprocess import InProcessTransport
    from callsense.ingest.transports.outage import Outage
    from callsense.store.db import describe_url

    # Named by what the pipeline needs; each retry's reason says which service failed.
    outage = Outage(f"the pipeline's services (database at {describe_url(settings.resolved_database_url)}, ASR, sentiment)",
                    settings.pipeline.outage_give_up_s, logging.getLogger("callsense.pipeline"))
    with console.status("Loading models (speech recognition, sentiment) ..."):
        while True:
            try:
                transport = InProcessTransport([build_stage(n, res) for n in STAGE_ORDER], outage=outage)
                break
            except OperationalError as e:  # the database is down at start: the same wait
                outage.failed(str(e.orig))
                outage.wait()
        outage.ok()
    return transport


@app.command()
def process(
    files: List[Path] = typer.Argument(..., help="Audio files or folders (MP3, WAV, FLAC, OGG, M4A; one speaker per channel), "
                                                 "chats (.jsonl, 'Name: text' .txt/.log) and emails (.eml, .mbox)."),
    agent: Optional[str] = typer.Option(None, help="Agent id to attach to these calls."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: SQLite in the data dir, or CALLSENSE_DATABASE_URL)."),
):
    """Process recorded calls in this process (embedded mode: no Kafka, no GPU) and print a summary per call.

    Chats (.jsonl of {speaker, time, text}, or .txt/.log/.chat of "[12:01:33] Name: text" lines)
    and emails (.eml, .mbox: one conversation per thread, quoted replies removed) become
    conversations of mode `text`: the agent is a speaker listed in CALLSENSE_TEXT_AGENT_NAMES,
    else each conversation's first speaker (see ingest/conversations.py). A malformed chat or
    email file is a dead letter like a refused recording.

    Inputs that are not regular files, are larger than CALLSENSE_MAX_INPUT_BYTES, or whose
    audio is refused (rate, channels, duration limits, unreadable header) become dead letters
    (`callsense dead-letters`) and the rest of the batch goes on. Exit status: 0 when every
    input was processed, 3 when some were refused or failed, 1 when the run itself failed,
    75 when the database or a Riva server stayed unavailable longer than CALLSENSE_OUTAGE_GIVE_UP_S
    (a failed write is retried with backoff until then; the line printed names what was not stored)."""
    from sqlalchemy.exc import OperationalError

    from callsense.core.errors import BadInput, OutageGaveUp
    from callsense.ingest.pipeline import PipelineResources
    from callsense.ingest.conversations import is_text_input, text_calls
    from callsense.ingest.sources import display_name, expand_inputs, recorded_call
    from callsense.ingest.stage import dead_letter
    from callsense.store.db import describe_url

    _setup_logging(logging.WARNING)
    settings = _settings(database_url=database_url)
    paths = expand_inputs(files)
    if not paths:
        _fail("no audio, chat or email files found in the given paths")
    res = PipelineResources(settings)
    rows = []
    handled = 0
    try:
        transport = _embedded_transport(settings, res)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("Processing calls", total=len(paths))
            for path in paths:
                name = display_name(path)
                bar.update(task, description=f"Processing {name}")
                t0 = time.perf_counter()
                try:
                    if is_text_input(path):  # a chat or email file: conversations of mode text
                        text = text_calls(path, settings, agent_id=agent)
                    else:
                        ev = recorded_call(path, res.blobs, agent_id=agent, settings=settings)
                except BadInput as e:
                    transport.publish([dead_letter("ingest", None, f"{name}: refused: {e}")])
                    transport.drain()
                    rows.append((name, None, f"refused: {e}", time.perf_counter() - t0))
                    handled += 1
                    bar.advance(task)
                    continue
                if is_text_input(path):
                    for conv in text:  # an mbox may hold several threads: a row each
                        transport.publish(conv.events)
                        transport.drain()
                        rows.append((conv.source_name, conv.call_id, None, time.perf_counter() - t0))
                else:
                    transport.publish([ev])
                    transport.drain()
                    rows.append((name, ev.call_id, None, time.perf_counter() - t0))
                handled += 1
                bar.advance(task)
    except OutageGaveUp as e:
        left = [display_name(p) for p in paths[handled:]]  # inputs handled, in order
        _gave_up(f"{e}; not stored: {len(left)} of {len(paths)} inputs ({', '.join(left)}); "
                 f"run `callsense process` on them again once the service is back")
    except _known_errors() as e:
        _fail(str(e))
    except OperationalError as e:
        _fail(f"cannot write to the store at {describe_url(settings.resolved_database_url)}: {e.orig}")
    problems = _print_summaries(res.store, rows)
    console.print(f"\nResults stored in [bold]{describe_url(settings.resolved_database_url)}[/]")
    console.print("Read them back with [bold]callsense calls[/] and [bold]callsense show CALL_ID[/]; "
                  "open the dashboard with [bold]callsense dashboard[/] (then http://localhost:8501).")
    if problems:
        console.print(f"{problems} of {len(rows)} inputs were refused or failed: see [bold]callsense dead-letters[/].")
        raise typer.Exit(EXIT_SOME_REFUSED)


def _print_summaries(store, rows) -> int:
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
            problems.append(f"[red]x[/] {escape(name)}: {escape(str(problem or summary.call.error))}")
            continue
        call, counts = summary.call, summary.counts()
        table.add_row(call.id, call.speakers.replace(",", ", "), str(summary.sentences),
                      f"[red]{counts['negative']}[/]/{counts['neutral']}/[green]{counts['positive']}[/]",
                      f"{call.duration_s or 0:.1f} s", f"{took:.1f} s", call.status)
    if table.row_count:
        console.print(table)
    for line in problems:
        console.print(line, markup=True, highlight=False)
    return len(problems)


@app.command()
def produce(
    files: List[Path] = typer.Argument(..., help="Recorded calls to publish."),
    agent: Optional[str] = typer.Option(None, help="Agent id to attach to these calls."),
):
    """Publish recorded calls to Kafka (audio by claim-check in the shared blob store).

    A broker outage is waited out for CALLSENSE_KAFKA_OUTAGE_GIVE_UP_S; then the calls not
    sent are named and the exit status is 75."""
    from callsense.core.errors import BadInput, OutageGaveUp
    from callsense.ingest.pipeline import PipelineResources
    from callsense.ingest.conversations import is_text_input, text_calls
    from callsense.ingest.sources import display_name, expand_inputs, recorded_call
    from callsense.ingest.stage import dead_letter
    from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

    settings = _settings()
    res = PipelineResources(settings)
    try:
        ensure_topics(settings)
        pub = KafkaPublisher(settings)
    except _known_errors() as e:
        _fail(str(e))
    refused = 0
    inputs = expand_inputs(files)
    handled = 0
    try:
        for path in inputs:
            name = display_name(path)
            try:
                if is_text_input(path):  # chats and emails: their events enter at the sentiment stage's topic
                    text = text_calls(path, settings, agent_id=agent)
                else:
                    ev = recorded_call(path, res.blobs, agent_id=agent, settings=settings)
            except BadInput as e:
                # To the dead-letter topic: the store stage lists it in `callsense dead-letters`.
                pub.publish([dead_letter("ingest", None, f"{name}: refused: {e}")])
                err.print(f"[yellow]refused[/] {escape(name)}: {escape(str(e))}")
                refused += 1
                handled += 1
                continue
            if is_text_input(path):
                for conv in text:
                    pub.publish(conv.events)
                    console.print(f"published {escape(conv.source_name)} as conversation [bold]{conv.call_id}[/]")
                handled += 1
                continue
            pub.publish([ev])
            handled += 1
            console.print(f"published {escape(name)} as call [bold]{ev.call_id}[/]")
        pub.flush()
    except OutageGaveUp as e:
        pub.close()
        never = [display_name(p) for p in inputs[handled:]]
        _gave_up(f"{e}" + (f"; never read: {len(never)} files ({', '.join(never)})" if never else ""))
    pub.close()
    if refused:
        raise typer.Exit(EXIT_SOME_REFUSED)


@app.command("import-dataset")
def import_dataset(
    path: Path = typer.Argument(..., help="A folder tree (one sub-folder per conversation) or a NeMo-style JSONL manifest."),
    agent: Optional[str] = typer.Option(None, help="Agent id to attach to these conversations."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: SQLite in the data dir, or CALLSENSE_DATABASE_URL)."),
):
    """Import a pre-split dataset (one file per utterance) as calls, embedded like `process`.

    A folder tree: one sub-folder per conversation, its audio files in order of their names;
    a file's speaker is a CALLSENSE_CHANNEL_ROLES role written as a word of its name
    (`0001_agent.wav`), else its sub-folder (`call1/customer/0002.wav`). A manifest: JSON
    lines {"audio_filepath", "duration", "offset"?, "speaker"?, "conversation"? or "call_id"?,
    "text"?}, grouped by conversation (else the audio file's folder), in manifest order; paths
    are relative to the manifest's folder and must stay inside it. Every file is checked like a
    recorded call; refused files and entries are dead letters and the rest goes on. Where the
    manifest has reference texts, the word error rate is printed (they are not stored).
    Exit status: 0, or 3 when something was refused (see `callsense dead-letters`), 1 or 75 as `process`."""
    from sqlalchemy.exc import OperationalError

    from callsense.core.errors import BadInput, OutageGaveUp
    from callsense.ingest.datasets import conversation_call, list_dataset, word_error_rate
    from callsense.ingest.pipeline import PipelineResources
    from callsense.ingest.stage import dead_letter
    from callsense.store.db import describe_url

    _setup_logging(logging.WARNING)
    settings = _settings(database_url=database_url)
    try:
        dataset = list_dataset(path, settings)
    except (BadInput, OSError) as e:
        _fail(f"{escape(str(path))}: {escape(str(e))}")
    if not dataset.conversations and not dataset.refused:
        _fail(f"no audio files found in {escape(str(path))}")
    res = PipelineResources(settings)
    rows = []
    refused = len(dataset.refused)
    references: list[tuple[str, dict]] = []
    done = 0
    try:
        transport = _embedded_transport(settings, res)
        if dataset.refused:
            transport.publish([dead_letter("ingest", None, reason) for reason in dataset.refused])
            transport.drain()
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("Importing conversations", total=len(dataset.conversations))
            for conv in dataset.conversations:
                bar.update(task, description=f"Importing {conv.name} ({len(conv.files)} files)")
                t0 = time.perf_counter()
                try:
                    call = conversation_call(conv, res.blobs, settings, agent_id=agent)
                except BadInput as e:
                    transport.publish([dead_letter("ingest", None, f"{conv.name}: refused: {e}")])
                    transport.drain()
                    rows.append((conv.name, None, f"refused: {e}", time.perf_counter() - t0))
                else:
                    refused += sum(1 for ev in call.events if ev.kind == "dead_letter")
                    transport.publish(call.events)
                    transport.drain()
                    rows.append((conv.name, call.call_id, None, time.perf_counter() - t0))
                    if call.references:
                        references.append((call.call_id, call.references))
                done += 1
                bar.advance(task)
    except OutageGaveUp as e:
        left = [c.name for c in dataset.conversations[done:]]
        _gave_up(f"{e}; not stored: {len(left)} of {len(dataset.conversations)} conversations ({', '.join(left)}); "
                 f"run `callsense import-dataset` again once the service is back")
    except _known_errors() as e:
        _fail(str(e))
    except OperationalError as e:
        _fail(f"cannot write to the store at {describe_url(settings.resolved_database_url)}: {e.orig}")
    problems = _print_summaries(res.store, rows)
    pairs = []
    for call_id, refs in references:
        hyps = {(u.channel, u.idx): u.text for u in res.store.utterances(call_id)}
        pairs += [(ref, hyps.get(key, "")) for key, ref in refs.items()]
    wer = word_error_rate(pairs)
    if wer is not None:
        console.print(f"Word error rate against the manifest's reference texts: [bold]{wer:.1%}[/] ({len(pairs)} utterances)")
    console.print(f"\nResults stored in [bold]{describe_url(settings.resolved_database_url)}[/]")
    if problems or refused:
        console.print(f"{problems} conversations and {refused} files or entries were refused or failed: "
                      "see [bold]callsense dead-letters[/].")
        raise typer.Exit(EXIT_SOME_REFUSED)


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
    """Publish a file to Kafka as a live call: ordered chunks keyed by call id, at real-time pace.

    A broker outage is waited out (chunks are buffered, at most CALLSENSE_KAFKA_BUFFER_BYTES)
    for CALLSENSE_KAFKA_OUTAGE_GIVE_UP_S; then the chunks not sent are named and the exit
    status is 75."""
    from callsense.core.errors import BadInput, OutageGaveUp
    from callsense.ingest.sources import live_chunks
    from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics

    settings = _settings()
    call_id = call_id or f"live-{uuid.uuid4().hex[:10]}"
    try:
        ensure_topics(settings)
        pub = KafkaPublisher(settings)
    except _known_errors() as e:
        _fail(str(e))
    last = None
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"Streaming {file.name} as {call_id}", total=None)
            for chunk in live_chunks(file, call_id=call_id, chunk_ms=chunk_ms, agent_id=agent, encoding=encoding,
                                     sample_rate=rate, realtime=realtime):
                pub.publish([chunk])
                last = chunk
                bar.advance(task)
        pub.flush()
    except OutageGaveUp as e:
        pub.close()
        rest = "" if last is not None and last.final else \
            f"; the rest of {file.name} (after seq {last.seq if last else -1}) was never read"
        _gave_up(f"{e}{rest}; live call {call_id} was not closed (its final chunk was not sent)")
    except (BadInput, OSError) as e:
        pub.close()
        _fail(f"{file}: {e}")
    pub.close()
    console.print(f"streamed {file.name} as live call [bold]{call_id}[/]")


@app.command()
def worker(
    stages: Optional[str] = typer.Option(None, help="Comma-separated stages (segment,live-transcribe,transcribe,sentiment,store) "
                                                      "or 'all' (live-transcribe only with CALLSENSE_LIVE_ASR=riva-streaming). "
                                                      "Default: CALLSENSE_WORKER_STAGES."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    """Run pipeline stages as Kafka consumers until interrupted (SIGINT/SIGTERM).

    Outages are waited out: the database (or an ASR server) without limit, since the inputs
    stay uncommitted; the broker for CALLSENSE_KAFKA_OUTAGE_GIVE_UP_S, then exit status 75
    (the uncommitted inputs are processed by the next worker)."""
    from callsense.core.errors import OutageGaveUp
    from callsense.ingest.pipeline import PipelineResources, build_stage, parse_stage_names
    from callsense.ingest.transports.kafka import run_worker

    _setup_logging(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        # kafka-python logs every connection and rebalance at INFO, and every failed
        # reconnect during a broker outage at ERROR; the worker says once that the broker
        # is away and once that it is back (ingest/transports/outage.py).
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings = _settings()
    try:
        names = parse_stage_names(stages or settings.pipeline.worker_stages, settings.pipeline.live_asr)
    except ValueError as e:
        _fail(str(e))
    if settings.pipeline.live_asr == "riva-streaming" and "segment" in names and "live-transcribe" not in names:
        logging.getLogger("callsense").warning(
            "CALLSENSE_LIVE_ASR=riva-streaming: this worker's segment stage skips live calls; "
            "run the live-transcribe stage in some worker (--stages all includes it)")
    stop = threading.Event()
    # Ctrl+C / SIGTERM end the run; the previous handlers come back when it ends (run
    # in-process, e.g. by a test, the caller's Ctrl+C must work again afterwards).
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        res = PipelineResources(settings)
        try:
            built = [build_stage(n, res) for n in names
                     for _ in range(settings.pipeline.segment_threads if n == "segment" else 1)]
            logging.getLogger("callsense").info("worker running %s against %s", ", ".join(names), settings.pipeline.kafka_bootstrap)
            run_worker(settings, built, stop)
        except OutageGaveUp as e:
            _gave_up(f"{e}; inputs not committed are processed again by the next worker")
        except _known_errors() as e:
            _fail(str(e))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    console.print(_calls_table(items, console.width))


def _calls_table(items, width: int) -> Table:
    """The call id is never cut (it is what `show` takes): on a narrow terminal the other
    columns are dropped, least useful first, and the source name folds onto more lines."""
    started = {c.id: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.started_at)) for c in items}
    cells = {
        "call id": [c.id for c in items],
        "source": [c.source_name or "" for c in items],
        "mode": [c.mode for c in items],
        "agent": [c.agent_id or "" for c in items],
        "status": [c.status for c in items],
        "duration": [f"{c.duration_s or 0:.1f} s" for c in items],
        "started": [started[c.id] for c in items],
    }
    order = ["call id", "source", "mode", "agent", "status", "duration", "started"]
    # Columns kept while they fit, in this order of importance (source may shrink to 12).
    priority = ["call id", "status", "duration", "source", "started", "mode", "agent"]

    def need(col: str) -> int:
        widest = max([len(col)] + [len(v) for v in cells[col]])
        return min(widest, 12) if col == "source" else widest

    shown, used = [], 1
    for col in priority:
        w = need(col) + 3  # padding and border
        if col == "call id" or used + w <= width:
            shown.append(col)
            used += w
    table = Table()
    for col in order:
        if col not in shown:
            continue
        if col == "call id":
            table.add_column(col, no_wrap=True, min_width=need(col))
        elif col == "source":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, no_wrap=True)
    for i in range(len(items)):
        table.add_row(*(escape(cells[col][i]) for col in order if col in shown))
    return table


SENTIMENT_STYLE = {"negative": "red", "neutral": "white", "positive": "green"}


def _resolve_call(store, key: str) -> str:
    """A call id from the whole id, a unique prefix of it, or the source file name."""
    from sqlalchemy import or_, select
    from sqlmodel import Session

    from callsense.store.schema import Call

    if store.get_call(key) is not None:
        return key
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with Session(store.engine) as s:
        found = s.exec(select(Call.id, Call.source_name).where(or_(
            Call.id.like(f"{escaped}%", escape="\\"), Call.source_name == key)).order_by(Call.id).limit(51)).all()
    if len(found) == 1:
        return found[0][0]
    if not found:
        _fail(f"no call '{escape(key)}' in the store (list them with `callsense calls`)")
    err.print(f"[bold red]error:[/] '{escape(key)}' matches {len(found) if len(found) <= 50 else 'more than 50'} calls; say which:")
    for call_id, source in found[:50]:
        err.print(f"  {call_id}  {escape(source or '')}", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def show(call_id: str = typer.Argument(..., help="A call id from `callsense calls`, a unique prefix of one, or the call's source file name.")):
    """Print one call's transcript with each sentence's sentiment."""
    from callsense.ingest.pipeline import PipelineResources

    store = PipelineResources(_settings()).store
    call_id = _resolve_call(store, call_id)
    summary = store.summary(call_id)
    if summary is None:
        _fail(f"no call '{escape(call_id)}' in the store (list them with `callsense calls`)")
    call = summary.call
    console.print(f"[bold]{call.id}[/]  {escape(call.source_name)}  {call.mode}  status={call.status}  agent={escape(call.agent_id or '-')}",
                  soft_wrap=True)
    if call.error:
        console.print(f"[red]{escape(call.error)}[/]")
    table = Table()
    for col in ("time", "speaker", "sentence", "sentiment", "conf"):
        table.add_column(col)
    for s in store.sentences(call_id):
        table.add_row(f"{s.start:6.1f}-{s.end:6.1f}", s.speaker, escape(s.text),
                      f"[{SENTIMENT_STYLE[s.sentiment]}]{s.sentiment}[/]", f"{s.confidence:.2f}")
    console.print(table)
    for speaker, counts in summary.by_speaker.items():
        console.print(f"{speaker}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


blobs_app = typer.Typer(help="The claim-check blob store (CALLSENSE_BLOB_DIR).", no_args_is_help=True)
app.add_typer(blobs_app, name="blobs")


@blobs_app.command("gc")
def blobs_gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be removed."),
    older_than_days: Optional[float] = typer.Option(
        None, "--older-than-days", min=0, help="Retention of finished calls' recordings, in days, instead of "
                                               "CALLSENSE_BLOB_RETENTION_DAYS (0 = keep them forever)."),
):
    """Remove blobs nothing needs: recordings of failed calls and of calls finished longer ago
    than the retention, blobs no call names (after a day: events in flight may name them), and
    temp files older than an hour, audio in clear that a crash left after a call's recording was redacted
    (CALLSENSE_PII_AUDIO). A blob of a call still processing or within retention stays."""
    from sqlalchemy import select
    from sqlmodel import Session

    from callsense.ingest.pipeline import PipelineResources
    from callsense.store.blobs import BlobUse
    from callsense.store.schema import Call

    settings = _settings()
    res = PipelineResources(settings)
    days = settings.blob_retention_days if older_than_days is None else older_than_days
    with Session(res.store.engine) as s:
        uses = [BlobUse(blob=b, status=st, started_at=sa or 0.0, finished_at=fa) for b, st, sa, fa in s.exec(
            select(Call.audio_blob, Call.status, Call.started_at, Call.finished_at).where(Call.audio_blob.is_not(None))).all()]
    # Audio in clear of calls whose recording was redacted, left by a crash (a call's recording always stays).
    uses += [BlobUse(blob=b, status="clear") for b in res.store.clear_blob_names()]
    report = res.blobs.gc(uses, days * 86400 if days else None, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for name, size, why in report.removed:
        console.print(f"{verb} {name}  {size} bytes  ({why})", soft_wrap=True)
    console.print(f"{verb} {len(report.removed)} files, {report.bytes_freed} bytes "
                  f"{'would be ' if dry_run else ''}freed; {report.kept} kept in {res.blobs.root}", soft_wrap=True)


@app.command("dead-letters")
def dead_letters(limit: int = typer.Option(20, min=1, help="How many of the newest to show.")):
    """Inputs that could not be processed, and why."""
    from callsense.ingest.pipeline import PipelineResources

    items = PipelineResources(_settings()).store.dead_letters(limit)
    if not items:
        console.print("No dead letters.")
    for d in items:
        # Reasons quote file names and message fields: printed as text, never as rich markup.
        console.print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(d.at))}  {d.stage:<10} {d.call_id or '-':<24} {d.reason}",
                      markup=False, highlight=False)


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
_COMMAND_MODULES = ("callsense.ingest.cli", "callsense.dashboard.cli", "callsense.dialog.cli", "callsense.asr.cli", "callsense.serve.riva.cli",
                    "callsense.finetune.cli")


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
