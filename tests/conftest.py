"""Session-wide fixtures: real servers, started as plain local processes and stopped by PID.

- ``kafka_bootstrap``: a single-node KRaft Kafka broker (``callsense.ingest.broker.local``).
- ``postgres_url``: a throw-away PostgreSQL cluster (initdb in a temporary folder).

Neither skips: when a server cannot start the test fails, quoting the server's log.
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

from callsense.ingest.broker.local import LocalKafka, LocalKafkaError, default_jar_cache, fetch_jars

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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (CI always has it; a user's clone may not)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_audio(shared_data: Path) -> Path:
    return shared_data / "audio"


@pytest.fixture(scope="session")
def riva_server():
    """One real riva-serve gRPC server for the session: in this process, on a free loopback
    port, stopped through its handle."""
    pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
    from callsense.asr.riva_server.server import RivaServer
    from callsense.config import Settings

    server = RivaServer(Settings(), host="127.0.0.1", port=0, workers=16).start()
    try:
        yield server
    finally:
        server.stop()
