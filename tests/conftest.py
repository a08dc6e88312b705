"""Session-wide fixtures: real servers, started as plain local processes and stopped by PID.

- ``kafka_bootstrap``: a single-node KRaft Kafka broker (``callsense.ingest.broker.local``).
- ``postgres_url``: a throw-away PostgreSQL cluster (initdb in a temporary folder).

Neither skips: when a server cannot start the test fails, quoting the server's log.

Every test runs without the developer's ``CALLSENSE_*`` variables (``callsense_env_isolated``):
settings come from what the test itself passes or sets. Kept: the variables that only say
where this machine keeps test tools (``TEST_TOOL_VARS``: not settings of callsense).

``shared_data``: ../shared/data; skipped when missing on a user's clone, a failure when the
``CI`` variable is set (CI always has it: a missing folder there is a broken set-up).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.ingest.broker.local import LocalKafka, LocalKafkaError, default_jar_cache, fetch_jars

# --------------------------------------------------------------------------- environment

#: Where this machine keeps the test tools: read by the test helpers, no field of
#: `Settings` (tests/test_test_setup.py checks that), so they stay in the environment.
TEST_TOOL_VARS = frozenset({"CALLSENSE_PG_BIN", "CALLSENSE_CHROMIUM"})


def _callsense_vars() -> list[str]:
    return [name for name in os.environ if name.startswith("CALLSENSE_") and name not in TEST_TOOL_VARS]


@pytest.fixture(scope="session", autouse=True)
def callsense_env_removed_for_the_session() -> Iterator[None]:
    """No CALLSENSE_* setting variable of the developer's shell for the session-scoped fixtures
    (servers built from `Settings()`) either: removed from os.environ, so subprocesses
    started without an explicit `env=` do not inherit them; put back at the end."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _callsense_vars():
            mp.delenv(name)
        yield


@pytest.fixture(autouse=True)
def callsense_env_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without any CALLSENSE_* setting variable (a test's own
    `monkeypatch.setenv` and the `env=` it gives a subprocess still apply: they come after
    this)."""
    for name in _callsense_vars():
        monkeypatch.delenv(name)


# --------------------------------------------------------------------------- default ASR model


@pytest.fixture(scope="session", autouse=True)
def moonshine_model_built(callsense_env_removed_for_the_session) -> None:
    """Moonshine is the default ASR engine: its model is built once per machine into the
    shared model cache (`callsense asr build-moonshine`, ~20 s) before any test runs, so
    tests and the workers they start never build it at the same time (a build also holds a
    lock). Nothing to do when it is built; skipped where the build inputs are not installed
    (the tests that need the model then say why)."""
    from callsense.asr.engines.moonshine_build import (
        MANIFEST_FILE, build_inputs_missing, build_lock, build_moonshine_model, default_model_dir,
    )
    from callsense.core.settings import Settings

    folder = default_model_dir(Settings())
    if (folder / MANIFEST_FILE).is_file() or build_inputs_missing():
        return
    with build_lock(folder):
        if not (folder / MANIFEST_FILE).is_file():
            build_moonshine_model(folder)


# --------------------------------------------------------------------------- Ctrl+C


def _interrupted(exc: BaseException | None) -> bool:
    """A KeyboardInterrupt somewhere in `exc`'s cause/context chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@pytest.fixture(scope="session", autouse=True)
def cli_runner_passes_ctrl_c_on() -> Iterator[None]:
    """Typer turns a KeyboardInterrupt inside a command into `Exit(130)` (a CLI's exit code
    for Ctrl+C), and CliRunner.invoke catches the SystemExit into `result.exit_code`: a
    Ctrl+C during an in-process CLI test only failed that test and pytest went on with the
    next one (the first Ctrl+C seemed ignored). Here an invoke that was interrupted raises
    KeyboardInterrupt again, so pytest stops at the first Ctrl+C."""
    invoke = CliRunner.invoke

    def invoke_passing_interrupts(self, *args, **kwargs):
        result = invoke(self, *args, **kwargs)
        if _interrupted(result.exception):
            raise KeyboardInterrupt(f"Ctrl+C during the CLI command (its exit code: {result.exit_code})")
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CliRunner, "invoke", invoke_passing_interrupts)
        yield


# --------------------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open while choosing)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_ports(1)[0]


@pytest.fixture
def pick_ports() -> Callable[[int], list[int]]:
    """``free_ports`` as a fixture (works whatever pytest's import mode)."""
    return free_ports


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The broker's jar folder (fetched once into the user's cache, then reused)."""
    try:
        return fetch_jars(default_jar_cache())
    except LocalKafkaError as exc:
        pytest.fail(f"cannot fetch the Kafka jars: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory, kafka_jars: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a local KRaft broker that lives for the whole session."""
    port, controller_port = free_ports(2)
    kafka = LocalKafka(
        home=tmp_path_factory.mktemp("kafka"),
        port=port,
        controller_port=controller_port,
        jars=kafka_jars,
    )
    try:
        kafka.start(timeout=120)
    except LocalKafkaError as exc:
        pytest.fail(f"local Kafka did not start: {exc}", pytrace=False)
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin_dir() -> Path:
    if env := os.environ.get("CALLSENSE_PG_BIN"):
        return Path(env)
    for version in ("15", "16", "17", "14", "13"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        if (candidate / "postgres").is_file():
            return candidate
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    pytest.fail(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH): "
        "run scripts/install-system-deps.sh or apt-get install postgresql",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a database ``callsense_test`` in a fresh PostgreSQL cluster.

    PostgreSQL refuses to run as root: as root the cluster folder belongs to the ``postgres``
    system user and initdb/postgres run under it (``setpriv`` execs, so the PID we hold is
    the postmaster's own). Trust authentication, loopback TCP only, socket in the folder.
    """
    import psycopg

    bin_dir = _pg_bin_dir()
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no `postgres` system user", pytrace=False)
        as_user = [
            "setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--",
        ]  # fmt: skip

    # Not under tmp_path_factory: pytest makes /tmp/pytest-of-root 0700, closed to `postgres`.
    root = Path(tempfile.mkdtemp(prefix="callsense-pg-"))
    data, sock, log_file = root / "data", root / "sock", root / "postgres.log"
    sock.mkdir()
    if owner is not None:
        for p in (root, sock):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if owner is not None:
        env["HOME"] = owner.pw_dir

    proc: subprocess.Popen[bytes] | None = None
    try:
        init = subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=root,
        )  # fmt: skip
        if init.returncode != 0:
            pytest.fail(f"initdb failed:\n{init.stdout}\n{init.stderr}", pytrace=False)

        port = free_port()
        with open(log_file, "ab") as log:
            proc = subprocess.Popen(
                [*as_user, str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                 "-k", str(sock), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=root, start_new_session=True,
            )  # fmt: skip

        deadline = time.monotonic() + 60
        last_error = ""
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"postgres exited with {proc.returncode} during start-up:\n{_tail(log_file)}",
                    pytrace=False,
                )
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                    connect_timeout=2, autocommit=True,
                ) as conn:  # fmt: skip
                    conn.execute("CREATE DATABASE callsense_test")
                break
            except psycopg.OperationalError as exc:
                last_error = str(exc).strip()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"postgres did not accept connections on 127.0.0.1:{port} in 60 s "
                    f"({last_error}):\n{_tail(log_file)}",
                    pytrace=False,
                )
            time.sleep(0.2)

        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/callsense_test"
    finally:
        if proc is not None and proc.poll() is None:
            # SIGINT = "fast" shutdown; SIGQUIT = immediate; SIGKILL last. Only this PID.
            for sig, wait_s in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- shared data

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def running_in_ci() -> bool:
    """The `CI` variable is set (GitHub Actions, GitLab CI and most others set CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shared_data(path: Path = SHARED_DATA) -> Path:
    """`path` when it is a folder. Missing: the test is skipped on a user's clone, and fails
    when CI is set (CI always has the data: skipping there would hide ~20 test files)."""
    if path.is_dir():
        return path
    if running_in_ci():
        pytest.fail(f"reference data not found at {path}, and CI is set: CI must provide it "
                    "(the tests that read it would otherwise be skipped, not run)", pytrace=False)
    pytest.skip(f"reference data not found at {path} (CI always has it; a user's clone may not)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (every test that reads the reference data gets it from here)."""
    return require_shared_data(SHARED_DATA)


@pytest.fixture
def shared_data_rule() -> Callable[[Path], Path]:
    """`require_shared_data` as a fixture, for the test of the rule itself."""
    return require_shared_data


@pytest.fixture(scope="session")
def shared_audio(shared_data: Path) -> Path:
    return shared_data / "audio"


@pytest.fixture(scope="session")
def riva_server():
    """One real riva-serve gRPC server for the session: in this process, on a free loopback
    port, stopped through its handle."""
    pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
    from callsense.serve.riva.server import RivaServer
    from callsense.core.settings import Settings

    # Whisper behind it: these tests compare riva-serve with embedded Whisper and boost words
    # (hotwords need Whisper). riva-serve's default (moonshine) has tests of its own
    # (tests/serve/riva/test_riva_serve_moonshine.py).
    server = RivaServer(Settings(riva_serve_asr_engine="whisper"), host="127.0.0.1", port=0, workers=16).start()
    try:
        yield server
    finally:
        server.stop()
