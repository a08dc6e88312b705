"""`callsense dashboard`: serve the dashboard, and manage who may sign in to it."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)

APP_PATH = Path(__file__).with_name("app.py")

dashboard_app = typer.Typer(
    help="The manager dashboard (Streamlit): live calls, call review, agent history, label review.",
    invoke_without_command=True, no_args_is_help=False,
)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _require_extra() -> None:
    """The dashboard's packages are the `dashboard` extra: say so instead of an ImportError."""
    import importlib.util

    missing = [m for m in ("streamlit", "bcrypt", "altair", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        _fail(f"the dashboard needs {', '.join(missing)}: install the extra with pip install 'callsense[dashboard]'")


def _settings(database_url: Optional[str] = None):
    from callsense.core.settings import Settings

    return Settings(**({"database_url": database_url} if database_url else {}))


def _engine(settings):
    from sqlalchemy.exc import OperationalError

    from callsense.store.db import describe_url, make_engine

    try:
        return make_engine(settings.resolved_database_url)
    except OperationalError as e:
        _fail(f"cannot open the store at {describe_url(settings.resolved_database_url)}: {e.orig}")


def _directory(settings):
    _require_extra()
    from callsense.dashboard.auth import UserDirectory, users_file

    return UserDirectory(_engine(settings), users_file(settings))


def streamlit_command(port: int, host: str) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.headless=true", f"--server.port={port}", f"--server.address={host}",
        "--server.fileWatcherType=none", "--server.runOnSave=false", "--browser.gatherUsageStats=false",
        "--global.developmentMode=false", "--client.toolbarMode=minimal", "--theme.base=light",
        "--theme.primaryColor=#1f6feb",
    ]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Poll Streamlit's health endpoint until it answers ok (False if the server died or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


@dashboard_app.callback()
def serve(
    ctx: typer.Context,
    port: int = typer.Option(8501, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to serve the team's network)."),
    database_url: Optional[str] = typer.Option(None, help="Store URL (default: the embedded SQLite store, or CALLSENSE_DATABASE_URL)."),
):
    """Serve the dashboard (Streamlit, headless) until interrupted; its health check is /_stcore/health."""
    if ctx.invoked_subcommand is not None:
        return
    _require_extra()
    from callsense.dashboard.auth import UsersFileError
    from callsense.store.db import describe_url

    settings = _settings(database_url)
    directory = _directory(settings)
    try:
        has_users = directory.has_users()
    except UsersFileError as e:
        _fail(str(e))
    env = dict(os.environ)
    if database_url:
        env["CALLSENSE_DATABASE_URL"] = database_url
    proc = subprocess.Popen(streamlit_command(port, host), env=env)

    def stop(*_):
        if proc.poll() is None:
            proc.terminate()

    previous_sigterm = signal.signal(signal.SIGTERM, stop)
    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
    url = f"http://{shown}:{port}"
    try:
        if wait_healthy(f"http://127.0.0.1:{port}" if host in ("0.0.0.0", "::") else url, proc):
            console.print(f"Dashboard at [bold]{url}[/] (store: {describe_url(settings.resolved_database_url)}); Ctrl+C stops it.")
            if not has_users:
                console.print("[yellow]No users yet:[/] add one with "
                              "[bold]callsense dashboard add-user NAME --role manager[/]")
        code = proc.wait()
    except KeyboardInterrupt:
        stop()
        code = proc.wait(timeout=20)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)  # the caller's handler again (run in-process)
    raise typer.Exit(0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code)


@dashboard_app.command("add-user")
def add_user(
    username: str = typer.Argument(..., help="Sign-in name."),
    role: List[str] = typer.Option(..., "--role", "-r", help="manager, agent or reviewer (repeat for several)."),
    name: str = typer.Option("", help="Display name."),
    agent_id: Optional[str] = typer.Option(None, help="For the agent role: the agent id calls carry (default: the user name)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input (for scripts)."),
    replace: bool = typer.Option(False, help="Replace an existing user of that name."),
    database_url: Optional[str] = typer.Option(None, help="Store URL."),
):
    """Add a user to the store (password hashed with bcrypt)."""
    password = _read_password(password_stdin)
    directory = _directory(_settings(database_url))
    try:
        user = directory.add_user(username, password, role, name=name, agent_id=agent_id, replace=replace)
    except ValueError as e:
        _fail(str(e))
    console.print(f"added [bold]{user.username}[/] ({', '.join(sorted(user.roles))}"
                  + (f", agent id {user.agent_id}" if user.agent_id else "") + ")")


@dashboard_app.command("remove-user")
def remove_user(username: str = typer.Argument(...), database_url: Optional[str] = typer.Option(None)):
    """Remove a user from the store (users in the YAML file are removed by editing it)."""
    if not _directory(_settings(database_url)).remove_user(username):
        _fail(f"no user '{username}' in the store")
    console.print(f"removed {username}")


@dashboard_app.command("users")
def list_users(database_url: Optional[str] = typer.Option(None)):
    """List who may sign in, and where each user is defined."""
    from callsense.dashboard.auth import UsersFileError

    try:
        users = _directory(_settings(database_url)).list_users()
    except UsersFileError as e:
        _fail(str(e))
    if not users:
        console.print("No users yet: add one with `callsense dashboard add-user NAME --role manager`.")
        return
    table = Table()
    for col in ("user", "name", "roles", "agent id", "defined in"):
        table.add_column(col)
    for user, where in users:
        table.add_row(user.username, user.name, ", ".join(sorted(user.roles)), user.agent_id or "", where)
    console.print(table)


@dashboard_app.command("hash-password")
def hash_password_cmd(password_stdin: bool = typer.Option(False, "--password-stdin")):
    """Print a bcrypt hash for the YAML users file."""
    _require_extra()
    from callsense.dashboard.auth import hash_password

    try:
        console.print(hash_password(_read_password(password_stdin)), soft_wrap=True)
    except ValueError as e:
        _fail(str(e))


@dashboard_app.command("attach-audio")
def attach_audio_cmd(
    call_id: str = typer.Argument(..., help="A call id from `callsense calls`."),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The call's original recording."),
    database_url: Optional[str] = typer.Option(None),
):
    """Give the dashboard a call's recording (for calls whose audio the store cannot find)."""
    from callsense.dashboard.audio import attach_audio
    from callsense.store.schema import Call
    from sqlmodel import Session

    settings = _settings(database_url)
    engine = _engine(settings)
    with Session(engine) as s:
        if s.get(Call, call_id) is None:
            _fail(f"no call '{call_id}' in the store (list them with `callsense calls`)")
    source = attach_audio(engine, settings, call_id, file, by=getpass.getuser())
    console.print(f"attached {file.name} to call {call_id} (blob {source.blob[:12]}...)")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        _fail("the password is empty")
    return password


def register(app: typer.Typer) -> None:
    app.add_typer(dashboard_app, name="dashboard")
