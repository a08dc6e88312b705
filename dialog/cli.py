"""`callsense dialog ...` and `callsense chat`: mounted by callsense/cli.py through `register(app)`."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

GOODBYE_INTENT = "smalltalk.goodbye"  # the small-talk intent that ends an interactive chat

console = Console()
err = Console(stderr=True)

dialog_app = typer.Typer(help="The retail assistant: validate and test flows, export the turn archive.",
                         no_args_is_help=True)


def _settings(**overrides):
    from callsense.core.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


def _print_issues(issues, *, show_warnings: bool = True) -> None:
    for issue in issues:
        if issue.severity == "error":
            console.print(f"[bold red]error[/] {escape(issue.file)}:{issue.line}: {escape(issue.message)}")
        elif show_warnings:
            console.print(f"[yellow]warning[/] {escape(issue.file)}:{issue.line}: {escape(issue.message)}")


@dialog_app.command("validate")
def validate(
    path: Optional[Path] = typer.Argument(None, help="A flow folder or file (default: CALLSENSE_DIALOG_FLOWS_DIR or "
                                                     "the shipped retail assistant)."),
    strict: bool = typer.Option(False, help="Warnings fail too."),
):
    """Check flow files: YAML errors, unknown state types, transitions to missing states (errors);
    unreachable states, templates never set (warnings)."""
    from callsense.dialog.assistant import flows_dir
    from callsense.dialog.flows import load_flows

    target = path or flows_dir(_settings())
    result = load_flows(target)
    _print_issues(result.issues)
    errors, warnings = len(result.errors), len(result.warnings)
    if result.flows is not None:
        f = result.flows
        console.print(f"{len(f.flows)} flow(s), {len(f.states)} states, {len(f.intent_transitions)} intents routed; "
                      f"main flow '{f.main.name}' starts at '{f.start_state}'.")
    console.print(f"{errors} error(s), {warnings} warning(s) in {target}")
    if errors or (strict and warnings):
        raise typer.Exit(1)


@dialog_app.command("graph")
def graph(
    path: Optional[Path] = typer.Argument(None, help="A flow folder or file (default: CALLSENSE_DIALOG_FLOWS_DIR or "
                                                     "the shipped retail assistant)."),
    out: Path = typer.Option(Path("."), help="Folder for flows.mmd, flows.dot (and flows.svg)."),
    name: str = typer.Option("flows", help="File name (without extension) of the drawings."),
    svg: bool = typer.Option(True, help="Also render flows.svg with Graphviz's `dot` when it is installed."),
):
    """Draw the flows as Mermaid and Graphviz DOT (and SVG with `dot`): every state, grouped by
    flow, every transition and intent route; unreachable states marked."""
    from callsense.dialog.assistant import flows_dir
    from callsense.dialog.flows import load_flows
    from callsense.dialog.flows.graph import build_graph, dot_binary, write_graph

    target = path or flows_dir(_settings())
    result = load_flows(target)
    _print_issues(result.errors, show_warnings=False)
    if result.flows is None:
        _fail(f"{target}: no flows to draw")
    try:
        written = write_graph(result.flows, out, name=name, svg=svg)
    except (OSError, RuntimeError) as e:
        _fail(f"cannot write the drawings: {e}")
    g = build_graph(result.flows)
    for kind, file in written.items():
        console.print(f"wrote {escape(str(file))} ({kind})")
    if svg and "svg" not in written:
        console.print("[dim]no SVG: Graphviz's `dot` is not installed (apt-get install graphviz); "
                      "the .mmd renders on GitHub and in the Mermaid live editor[/]" if dot_binary() is None else "")
    unreachable = sorted(g.unreachable)
    console.print(f"{len(g.states)} states, {len(g.edges)} arrows, {len(unreachable)} unreachable"
                  + (f": {', '.join(unreachable)}" if unreachable else ""))
    if result.errors:
        raise typer.Exit(1)


@dialog_app.command("test")
def test(
    path: Path = typer.Argument(..., help="A conversation test file (YAML) or a folder of them."),
    flows: Optional[Path] = typer.Option(None, help="Flow folder (default: the folder above `tests/`, else the "
                                                    "configured flows)."),
    nlu: Optional[str] = typer.Option(None, help="NLU backend (default: CALLSENSE_NLU_BACKEND)."),
):
    """Run conversation tests: user turns against expected replies, states, intents and slots."""
    from callsense.dialog.assistant import build_nlu
    from callsense.dialog.conversation_tests import ConversationFileError, run_conversation_tests
    from callsense.dialog.flows import FlowValidationError

    if not path.exists():
        _fail(f"{path}: no such file or folder")
    settings = _settings()
    started = time.perf_counter()
    try:
        backend = build_nlu(settings, notice=lambda m: err.print(f"[yellow]{escape(m)}[/]"), name=nlu)
        results = run_conversation_tests(path, flows=flows, settings=settings, nlu=backend)
    except FlowValidationError as e:
        _print_issues(e.issues, show_warnings=False)
        _fail("the flows have errors; see `callsense dialog validate`")
    except ConversationFileError as e:
        _fail(str(e))
    passed = 0
    for r in results:
        if r.passed:
            passed += 1
            console.print(f"[green]PASS[/] {escape(r.name)} ({r.turns} turns)")
        else:
            console.print(f"[bold red]FAIL[/] {escape(r.name)}")
            for failure in r.failures:
                console.print(f"     {escape(failure)}")
    took = time.perf_counter() - started
    console.print(f"{passed}/{len(results)} conversations passed in {took:.1f} s")
    if passed != len(results):
        raise typer.Exit(1)


@dialog_app.command("export-csv")
def export_csv_cmd(
    day: Optional[str] = typer.Option(None, help="One UTC day, YYYY-MM-DD (default: every day with turns)."),
    out: Optional[Path] = typer.Option(None, help="Folder (default: CALLSENSE_DIALOG_EXPORT_DIR or data dir/dialog/exports)."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: CALLSENSE_DATABASE_URL)."),
):
    """Dump the turn archive to CSV, one file per day, for review and annotation."""
    from callsense.dialog.archive import export_csv
    from callsense.store.db import make_engine

    settings = _settings(database_url=database_url)
    if day:
        try:
            time.strptime(day, "%Y-%m-%d")
        except ValueError:
            _fail(f"--day must look like 2025-06-02, not {day!r}")
    out = out or settings.dialog.export_dir or settings.data_dir / "dialog" / "exports"
    paths = export_csv(make_engine(settings.resolved_database_url), out, day)
    if not paths:
        console.print("No turns archived yet: talk to the assistant with `callsense chat`.")
    for p in paths:
        console.print(f"wrote {p}")


@dialog_app.command("import-reviews")
def import_reviews_cmd(
    csv_file: Path = typer.Argument(..., help="A CSV from `export-csv` with `reviewed`, `review_intent` or "
                                              "`review_tags` filled in."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: CALLSENSE_DATABASE_URL)."),
):
    """Store annotators' reviews of archived turns (accepted or corrected intents and slot tags)."""
    from callsense.dialog.archive import import_reviews
    from callsense.store.db import make_engine

    if not csv_file.is_file():
        _fail(f"{csv_file}: no such file")
    settings = _settings(database_url=database_url)
    result = import_reviews(make_engine(settings.resolved_database_url), csv_file)
    for p in result.problems:
        console.print(f"[yellow]skipped[/] {escape(p)}")
    console.print(f"{result.updated} turn(s) reviewed, {result.skipped} row(s) without a review, "
                  f"{len(result.problems)} problem(s)")
    if result.problems and not result.updated:
        raise typer.Exit(1)


@dialog_app.command("export-nemo")
def export_nemo_cmd(
    out: Path = typer.Argument(..., help="Folder for dict.intents.csv, dict.slots.csv, train.tsv, train_slots.tsv."),
    include_unreviewed: bool = typer.Option(False, help="Also turns nobody reviewed (the NLU's own labels)."),
    test_fraction: float = typer.Option(0.0, min=0.0, max=0.9, help="Share of sentences for test.tsv / test_slots.tsv."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: CALLSENSE_DATABASE_URL)."),
):
    """Write reviewed turns as NeMo intent/slot training files (labels mapped by dialog/nlu/labels.py)."""
    from callsense.dialog.archive import export_nemo
    from callsense.store.db import make_engine

    settings = _settings(database_url=database_url)
    result = export_nemo(make_engine(settings.resolved_database_url), out, include_unreviewed=include_unreviewed,
                         test_fraction=test_fraction)
    console.print(f"wrote {out}: {result.train} training and {result.test} test sentence(s), "
                  f"{result.skipped} turn(s) left out (NLU errors, empty)")
    for name, n in sorted(result.intents.items(), key=lambda kv: -kv[1]):
        console.print(f"  {n:5d}  {name}")
    if result.train + result.test == 0:
        console.print("No reviewed turns: review an `export-csv` file and load it with `callsense dialog import-reviews`, "
                      "or pass --include-unreviewed.")


def chat(
    session: Optional[str] = typer.Option(None, help="Session id to start or resume (default: a new one)."),
    flows: Optional[Path] = typer.Option(None, help="Flow folder (default: the configured flows)."),
    nlu: Optional[str] = typer.Option(None, help="NLU backend (default: CALLSENSE_NLU_BACKEND)."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: CALLSENSE_DATABASE_URL)."),
    delays: bool = typer.Option(True, help="Honour the flows' `delay` before messages (--no-delays: answer at once)."),
    debug: bool = typer.Option(False, "--debug", help="Show intent, slots and state after each reply."),
    voice: bool = typer.Option(False, "--voice", help="Also speak the replies with the TTS engine (CALLSENSE_TTS_ENGINE): "
                                                      "through paplay/aplay, or into --audio-out DIR."),
    audio_in: Optional[list[Path]] = typer.Option(
        None, "--audio-in", metavar="FILE",
        help="A recorded user turn (WAV, MP3, anything FFmpeg reads) sent through speech recognition "
             "(CALLSENSE_ASR_ENGINE) instead of typed text; repeat the option for several turns, played in order, "
             "then the chat ends. The terminal has no microphone input (a server has no sound device): record "
             "the turns first, or talk on the dashboard's Assistant page."),
    audio_out: Optional[Path] = typer.Option(
        None, "--audio-out", metavar="DIR",
        help="Write each spoken reply to DIR as a WAV file (SESSION-NNN.wav, 000 = the greeting) instead of "
             "playing it; implies --voice. Needed where neither paplay nor aplay is installed."),
):
    """Talk to the retail assistant in the terminal (empty line or Ctrl-D to leave).

    With --voice the replies are spoken too; with --audio-in the user's turns are recordings.
    Every turn is archived (voice turns with their ASR confidence)."""
    from callsense.dialog.assistant import Assistant, Reply, build_nlu
    from callsense.dialog.flows import FlowValidationError
    from callsense.dialog.voice import (Heard, PcmPlayer, VoiceAssistant, VoiceInputError, VoiceTurn, VoiceUnavailable,
                                        find_player, write_wav)

    voice = voice or audio_out is not None
    for f in audio_in or []:
        if not f.is_file():
            _fail(f"--audio-in {f}: no such file")
    player_cmd = None
    if voice and audio_out is None:
        player_cmd = find_player()
        if player_cmd is None:
            _fail("--voice: no paplay or aplay to play the replies (apt-get install pulseaudio-utils or alsa-utils); "
                  "or pass --audio-out DIR to write them as WAV files")
    settings = _settings(database_url=database_url)
    try:
        backend = build_nlu(settings, notice=lambda m: err.print(f"[yellow]{escape(m)}[/]"), name=nlu)
        assistant = Assistant(settings, flows=flows, nlu=backend)
    except FlowValidationError as e:
        _print_issues(e.issues, show_warnings=False)
        _fail("the flows have errors; fix them (see `callsense dialog validate`)")
    except Exception as e:  # noqa: BLE001 - one clear line for people
        _fail(f"cannot start the assistant: {e}")
    speaker = VoiceAssistant(settings, assistant=assistant)
    if voice or audio_in:
        try:
            speaker.preload(asr=bool(audio_in), tts=voice, warm_up=False)
        except VoiceUnavailable as e:
            assistant.close()
            _fail(str(e))
    session = session or f"chat-{uuid.uuid4().hex[:10]}"
    leave = "" if audio_in else " - empty line or Ctrl-D to leave"
    channels = f" - {speaker.describe()}" if voice or audio_in else f" - backend {backend.name}"
    console.print(f"[dim]session {session}{channels}{leave}[/]")
    spoken = {"n": 0}
    said_goodbye = {"yes": False}

    def say(reply) -> None:
        said_goodbye["yes"] = reply.intent == GOODBYE_INTENT
        for msg in reply.messages:
            if delays and msg.delay_s and not voice:
                time.sleep(min(msg.delay_s, 5.0))
            if msg.text:
                console.print(f"[bold cyan]assistant:[/] {escape(msg.text)}")
        if debug and reply.intent:
            console.print(f"[dim]  intent={reply.intent} ({reply.confidence}) slots={reply.slots} "
                          f"state={reply.state}{' error=' + reply.error if reply.error else ''}[/]")

    def turn(**what) -> None:
        """One turn through VoiceAssistant: print what was heard and the reply as soon as they
        exist, play each audio chunk as it is synthesized, or write the reply's WAV file."""
        player = PcmPlayer(player_cmd) if player_cmd else None
        for event in speaker.stream_turn(session, spoken=voice, **what):
            if isinstance(event, VoiceTurn):
                if event.speech_error:
                    err.print(f"[yellow]{escape(event.speech_error)}; the reply is not spoken[/]")
                elif event.audio and audio_out is not None:
                    path = write_wav(audio_out / f"{session}-{spoken['n']:03d}.wav", event.audio)
                    console.print(f"[dim]  (spoken reply: {escape(str(path))})[/]")
                if event.audio or event.reply.text:
                    spoken["n"] += 1
                if debug and event.timings.first_audio_ms is not None:
                    t = event.timings
                    console.print(f"[dim]  first reply audio after {t.first_audio_ms:.0f} ms (ASR {t.asr_ms:.0f}, "
                                  f"dialog {t.dialog_ms:.0f}, TTS first {t.tts_first_ms:.0f})[/]")
            elif isinstance(event, Heard):
                if event.nothing:
                    console.print(f"[bold]you:[/] [dim](no speech heard in {escape(str(what['audio']))})[/]")
                else:
                    conf = f", ASR confidence {event.confidence:.2f}" if event.confidence is not None else ""
                    console.print(f"[bold]you:[/] {escape(event.text)} [dim](voice{conf})[/]")
            elif isinstance(event, Reply):
                say(event)
            elif player is not None:  # an audio chunk
                player.play(event)
        if player is not None:
            player.finish()

    try:
        try:
            turn()  # the greeting
            if audio_in:
                for f in audio_in:
                    try:
                        turn(audio=f)
                    except VoiceInputError as e:  # a bad file is reported; the next one is still played
                        err.print(f"[bold red]error:[/] {escape(str(f))}: {escape(str(e))}")
            else:
                while True:
                    try:
                        text = console.input("[bold]you:[/] ")
                    except (EOFError, KeyboardInterrupt):
                        console.print()
                        break
                    if not text.strip():
                        break
                    turn(text=text)
                    if said_goodbye["yes"]:  # the flow said goodbye and reset the session: the chat is over
                        break
        except VoiceUnavailable as e:
            _fail(str(e))
    finally:
        assistant.close()
    console.print(f"[dim]Conversation saved as session {session}; resume it with --session {session}.[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(dialog_app, name="dialog")
    app.command("chat")(chat)
