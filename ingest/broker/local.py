"""A single-node Kafka broker (KRaft, broker + controller in one JVM) run as a plain process.

No Docker and no Kafka distribution: the broker's jars come from Maven Central through the
packaged ``pom.xml`` (``fetch_jars``), and ``LocalKafka`` writes ``server.properties``,
formats the storage once, starts ``java ... kafka.Kafka server.properties`` detached and
stops it again by the PID it wrote.

Layout of ``LocalKafka.home``::

    server.properties    rewritten on every start (ports may change)
    log4j2.properties    copied from the package on every start
    jars -> JAR_DIR      symbolic link to the jar folder (class path ``jars/*``)
    data/                log.dirs and the KRaft metadata log (meta.properties marks it formatted)
    logs/server.log      the broker's log (rolling); logs/stdout.log: the JVM's stdout/stderr
    cluster.id           the cluster id given to ``StorageTool format``
    kafka.pid            PID of the running broker

Command line (``callsense kafka-local`` calls the same functions)::

    python -m callsense.ingest.broker.local fetch|start|stop|status [--home DIR] [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

__all__ = [
    "DEPENDENCY_PLUGIN",
    "KafkaStatus",
    "LocalKafka",
    "LocalKafkaError",
    "default_home",
    "default_jar_cache",
    "fetch_jars",
    "main",
    "saved_ports",
]

log = logging.getLogger(__name__)

#: Named in full (not ``dependency:``) so that an offline run needs no plugin-prefix metadata.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: Written into the jar folder once it is complete: the pom's sha256 and the jar names.
JARS_MARKER = ".callsense-complete"
PID_FILE = "kafka.pid"
MAIN_CLASS = "kafka.Kafka"
DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
LOG_TAIL_LINES = 40


class LocalKafkaError(RuntimeError):
    """The local broker (or fetching its jars) failed; the message quotes what went wrong."""


# --------------------------------------------------------------------------- defaults


def default_home() -> Path:
    """``$CALLSENSE_DATA_DIR/kafka``, else ``$XDG_DATA_HOME/callsense/kafka``, else
    ``~/.local/share/callsense/kafka``."""
    if data_dir := os.environ.get("CALLSENSE_DATA_DIR"):
        return Path(data_dir).expanduser() / "kafka"
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / "callsense" / "kafka"
    return Path.home() / ".local" / "share" / "callsense" / "kafka"


def default_jar_cache() -> Path:
    """``$CALLSENSE_KAFKA_JARS``, else ``$XDG_CACHE_HOME/callsense/kafka-jars``, else
    ``~/.cache/callsense/kafka-jars``."""
    if jars := os.environ.get("CALLSENSE_KAFKA_JARS"):
        return Path(jars).expanduser()
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return Path(xdg).expanduser() / "callsense" / "kafka-jars"
    return Path.home() / ".cache" / "callsense" / "kafka-jars"


def _resource_bytes(name: str) -> bytes:
    return resources.files(__package__ or "callsense.ingest.broker").joinpath(name).read_bytes()


# --------------------------------------------------------------------------- jars


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _jars_complete(jar_dir: Path, pom_sha: str) -> bool:
    marker = jar_dir / JARS_MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict) or info.get("pom_sha256") != pom_sha:
        return False
    names = info.get("jars")
    if not isinstance(names, list) or not names:
        return False
    return all((jar_dir / str(n)).is_file() for n in names)


def _require_tool(name: str, why: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise LocalKafkaError(
            f"`{name}` was not found on PATH: {why}. On Debian: "
            "apt-get install -y --no-install-recommends openjdk-17-jre-headless maven "
            "(or run scripts/install-system-deps.sh)."
        )
    return exe


def fetch_jars(cache_dir: Path | None = None, *, offline_first: bool = True) -> Path:
    """Make sure ``cache_dir`` holds the broker's runtime jars and return it.

    Runs ``mvn -B -q <dependency-plugin>:copy-dependencies -DincludeScope=runtime`` on a copy
    of the packaged pom, first offline (``-o``, from ``~/.m2``) and then online. Does nothing
    when the folder already carries a marker for the same pom with all its jars present.
    """
    jar_dir = Path(cache_dir if cache_dir is not None else default_jar_cache()).expanduser()
    jar_dir = jar_dir.absolute()
    pom = _resource_bytes("pom.xml")
    pom_sha = hashlib.sha256(pom).hexdigest()
    if _jars_complete(jar_dir, pom_sha):
        return jar_dir
    with _locked(jar_dir.parent / f".{jar_dir.name}.lock"):
        if _jars_complete(jar_dir, pom_sha):  # another process finished it meanwhile
            return jar_dir
        mvn = _require_tool("mvn", "Maven fetches the Kafka broker's jars from Maven Central")
        _require_tool("java", "the local Kafka broker is a Java program")
        jar_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="callsense-kafka-pom-") as tmp:
            project = Path(tmp)
            (project / "pom.xml").write_bytes(pom)
            staging = project / "jars"
            base = [
                mvn, "-B", "-q", "-Dstyle.color=never",
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]  # fmt: skip
            attempts = [["-o"], []] if offline_first else [[]]
            failure = ""
            for extra in attempts:
                shutil.rmtree(staging, ignore_errors=True)
                cmd = [base[0], *extra, *base[1:]]
                log.info("fetching Kafka jars: %s", " ".join(cmd))
                proc = subprocess.run(
                    cmd, cwd=project, stdin=subprocess.DEVNULL, capture_output=True, text=True
                )
                if proc.returncode == 0 and any(staging.glob("*.jar")):
                    break
                failure = (proc.stdout + proc.stderr).strip()
            else:
                tail = "\n".join(failure.splitlines()[-LOG_TAIL_LINES:])
                raise LocalKafkaError(
                    "could not fetch the Kafka jars with Maven (offline, then from Maven "
                    f"Central):\n{tail}"
                )
            names = sorted(p.name for p in staging.glob("*.jar"))
            for old in jar_dir.glob("*.jar"):  # a different pom: drop jars it no longer names
                if old.name not in names:
                    old.unlink()
            for name in names:
                os.replace(staging / name, jar_dir / name)
        marker = {"pom_sha256": pom_sha, "jars": names}
        tmp_marker = jar_dir / f"{JARS_MARKER}.tmp"
        tmp_marker.write_text(json.dumps(marker, indent=1) + "\n")
        os.replace(tmp_marker, jar_dir / JARS_MARKER)
    return jar_dir


# --------------------------------------------------------------------------- processes


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc/PID/stat (``Z`` for a zombie), None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def _alive(pid: int) -> bool:
    state = _proc_state(pid)
    if state is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_since(path: Path, offset: int = 0, limit: int = 256 * 1024) -> str:
    """The text of ``path`` after byte ``offset`` (from 0 if the file rolled over), at most
    the last ``limit`` bytes of it."""
    try:
        with open(path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            start = offset if offset <= end else 0
            fh.seek(max(start, end - limit))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = LOG_TAIL_LINES, offset: int = 0) -> str:
    return "\n".join(_read_since(path, offset).splitlines()[-lines:])


def _escape_property(value: str) -> str:
    return value.replace("\\", "\\\\")


def read_properties(path: Path) -> dict[str, str]:
    """A minimal reader for the ``key=value`` files this module writes."""
    props: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return props
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        props[key.strip()] = value.strip().replace("\\\\", "\\")
    return props


# --------------------------------------------------------------------------- the broker


@dataclass(frozen=True)
class KafkaStatus:
    running: bool
    pid: int | None
    bootstrap: str
    home: Path
    accepting: bool = False  # the broker port takes connections

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["home"] = str(self.home)
        return d


@dataclass
class LocalKafka:
    """One local KRaft broker+controller listening on 127.0.0.1 only.

    ``jars``: the jar folder; None fetches into ``default_jar_cache()`` on ``start``.
    ``properties``: extra/overriding ``server.properties`` entries.
    """

    home: Path = field(default_factory=default_home)
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    jars: Path | None = None
    heap: str = "256m"
    java: str = "java"
    properties: Mapping[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _probe_error: str = field(default="", init=False, repr=False)
    _log_offsets: dict[Path, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().absolute()

    # ---- paths

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / PID_FILE

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()

    # ---- configuration

    def server_properties(self) -> dict[str, str]:
        host = "127.0.0.1"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": (
                f"PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{self.controller_port}"
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            # 50 by default: the first consumer group on a 2-core machine waits for all of them.
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "message.max.bytes": str(4 * 1024 * 1024),
            "replica.fetch.max.bytes": str(4 * 1024 * 1024),
            "log.retention.hours": "168",
        }
        props.update({str(k): str(v) for k, v in self.properties.items()})
        return props

    def _write_config(self) -> None:
        lines = ["# Written by callsense.ingest.broker.local on every start; edits are lost."]
        lines += [f"{k}={_escape_property(v)}" for k, v in self.server_properties().items()]
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.config_file)
        (self.home / "log4j2.properties").write_bytes(_resource_bytes("log4j2.properties"))

    def _link_jars(self) -> Path:
        jar_dir = (self.jars or fetch_jars(default_jar_cache())).absolute()
        if not any(jar_dir.glob("*.jar")):
            raise LocalKafkaError(f"no jars in {jar_dir}: run `fetch` first")
        link = self.home / "jars"
        if link.is_symlink():
            if Path(os.readlink(link)) == jar_dir:
                return link
            link.unlink()
        elif link.exists():  # not ours to replace: use the jar folder directly
            return jar_dir
        try:
            link.symlink_to(jar_dir, target_is_directory=True)
        except OSError:
            return jar_dir
        return link

    def _java_base(self, jar_dir: Path) -> list[str]:
        return [
            self.java,
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            "-XX:+ExitOnOutOfMemoryError",
            "-Dlog4j2.shutdownHookEnabled=false",
            f"-Dlog4j.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{jar_dir}/*",
        ]

    def _storage_tool(self, jar_dir: Path, *args: str) -> str:
        cmd = [*self._java_base(jar_dir), "kafka.tools.StorageTool", *args]
        proc = subprocess.run(
            cmd, cwd=self.home, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise LocalKafkaError(
                f"kafka.tools.StorageTool {' '.join(args)} failed (exit {proc.returncode}):\n"
                + (proc.stdout + proc.stderr).strip()
            )
        return proc.stdout.strip()

    def _format(self, jar_dir: Path) -> None:
        if self.formatted:
            return
        id_file = self.home / "cluster.id"
        cluster_id = id_file.read_text().strip() if id_file.is_file() else ""
        if not cluster_id:
            cluster_id = self._storage_tool(jar_dir, "random-uuid").splitlines()[-1].strip()
            id_file.write_text(cluster_id + "\n")
        self._storage_tool(
            jar_dir, "format", "--standalone", "-t", cluster_id, "-c", str(self.config_file)
        )

    # ---- process control

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """PID is alive and is this home's broker (guards against a reused PID)."""
        if not _alive(pid):
            return False
        cmd = _cmdline(pid)
        if not cmd:  # no /proc: trust the pid file
            return True
        return MAIN_CLASS in cmd and str(self.config_file) in cmd

    def running_pid(self) -> int | None:
        pid = self._read_pid()
        return pid if pid is not None and self._is_ours(pid) else None

    def status(self) -> KafkaStatus:
        pid = self.running_pid()
        return KafkaStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            home=self.home,
            accepting=pid is not None and _port_open("127.0.0.1", self.port),
        )

    def _ready(self, admin_timeout_s: float) -> bool:
        if not _port_open("127.0.0.1", self.port):
            self._probe_error = f"127.0.0.1:{self.port} refuses connections"
            return False
        from kafka.admin import KafkaAdminClient  # imported late: only start() needs it

        timeout_ms = max(1000, int(admin_timeout_s * 1000))
        admin = None
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="callsense-local-kafka-probe",
                request_timeout_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
            )
            admin.list_topics()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            self._probe_error = f"admin list_topics failed: {exc!r}"
            log.debug("broker not ready yet: %s", self._probe_error)
            return False
        finally:
            if admin is not None:
                with contextlib.suppress(Exception):
                    admin.close()

    def _failure(self, what: str) -> LocalKafkaError:
        """An error quoting this start's ERROR lines and the last lines of both logs."""
        parts = [f"local Kafka broker in {self.home} {what}."]
        offsets = self._log_offsets
        text = _read_since(self.server_log, offsets.get(self.server_log, 0))
        lines = text.splitlines()
        errors = ["\n".join(lines[i : i + 2]) for i, line in enumerate(lines) if "] ERROR " in line]
        if errors:
            parts.append("--- errors:\n" + "\n".join(errors[-5:]))
        for path in (self.stdout_log, self.server_log):
            tail = _tail(path, offset=offsets.get(path, 0))
            if tail.strip():
                parts.append(f"--- last lines of {path}:\n{tail}")
        return LocalKafkaError("\n".join(parts))

    def start(self, timeout: float = 60.0) -> KafkaStatus:
        """Start the broker (formatting its storage the first time) and wait until it answers
        an admin ``list_topics``. Returns at once if this home's broker is already running."""
        deadline = time.monotonic() + timeout
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        if (pid := self.running_pid()) is not None:
            self._wait_ready(pid, deadline)
            return self.status()
        self.pid_file.unlink(missing_ok=True)  # stale
        for port in (self.port, self.controller_port):
            if _port_open("127.0.0.1", port, timeout=0.2):
                raise LocalKafkaError(f"127.0.0.1:{port} is already in use by another process")
        jar_dir = self._link_jars()
        self._write_config()
        self._log_offsets = {p: _size(p) for p in (self.server_log, self.stdout_log)}
        self._format(jar_dir)
        cmd = [*self._java_base(jar_dir), MAIN_CLASS, str(self.config_file)]
        with open(self.stdout_log, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        pid = self._proc.pid
        self.pid_file.write_text(f"{pid}\n")
        try:
            self._wait_ready(pid, deadline, timeout)
        except BaseException:
            self._kill(pid, grace=5.0)
            self.pid_file.unlink(missing_ok=True)
            raise
        return self.status()

    def _wait_ready(self, pid: int, deadline: float, timeout: float | None = None) -> None:
        self._probe_error = ""
        while True:
            probe_s = min(5.0, max(1.0, deadline - time.monotonic()))
            if not self._exited(pid) and self._ready(probe_s):
                return
            if self._exited(pid):
                code = self._proc.returncode if self._proc is not None else None
                raise self._failure(f"exited during start-up (exit code {code})")
            if time.monotonic() >= deadline:
                raise self._failure(
                    f"did not answer on {self.bootstrap} within {timeout or 0:.0f} s "
                    f"(last probe: {self._probe_error or 'none'})"
                )
            time.sleep(0.25)

    def _exited(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is not None  # reaps our own child
        return not _alive(pid)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._exited(pid):
                return True
            time.sleep(0.1)
        return self._exited(pid)

    def _kill(self, pid: int, grace: float) -> None:
        """SIGTERM to ``pid`` only, SIGKILL after ``grace`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, grace):
            log.warning("Kafka broker pid %d ignored SIGTERM for %.0f s: SIGKILL", pid, grace)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        if self._proc is not None and self._proc.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)
            self._proc = None

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the broker by the PID in the pid file; False if it was not running."""
        pid = self._read_pid()
        if pid is None or not self._is_ours(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        self._kill(pid, grace=timeout)
        self.pid_file.unlink(missing_ok=True)
        return True

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def saved_ports(home: Path) -> tuple[int, int] | None:
    """(port, controller_port) from the ``server.properties`` a previous start wrote."""
    props = read_properties(Path(home) / "server.properties")
    try:
        listeners = dict(
            item.split("://", 1) for item in props.get("listeners", "").split(",") if "://" in item
        )
        return (
            int(listeners["PLAINTEXT"].rsplit(":", 1)[1]),
            int(listeners["CONTROLLER"].rsplit(":", 1)[1]),
        )
    except (KeyError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m callsense.ingest.broker.local",
        description="Run a single-node KRaft Kafka broker as a plain local process.",
    )
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--home", type=Path, default=None, help=f"default: {default_home()}")
    parser.add_argument(
        "--port", type=int, default=None, help="broker port (default: the last one, else 9092)"
    )
    parser.add_argument(
        "--controller-port", type=int, default=None, help="default: the last one, else 9093"
    )
    parser.add_argument("--jars", type=Path, default=None, help=f"default: {default_jar_cache()}")
    parser.add_argument("--timeout", type=float, default=None, help="seconds (start 60, stop 20)")
    parser.add_argument("--json", action="store_true", help="print status as JSON")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )

    try:
        if args.command == "fetch":
            t0 = time.monotonic()
            jar_dir = fetch_jars(args.jars if args.jars is not None else default_jar_cache())
            count = len(list(jar_dir.glob("*.jar")))
            print(f"{count} jars in {jar_dir} ({time.monotonic() - t0:.1f} s)")
            return 0
        home = args.home if args.home is not None else default_home()
        saved = saved_ports(home) or (DEFAULT_PORT, DEFAULT_CONTROLLER_PORT)
        kafka = LocalKafka(
            home=home,
            port=args.port if args.port is not None else saved[0],
            controller_port=args.controller_port if args.controller_port is not None else saved[1],
            jars=fetch_jars(args.jars) if args.jars is not None else None,
        )
        if args.command == "start":
            t0 = time.monotonic()
            st = kafka.start(timeout=args.timeout or 60.0)
            print(f"Kafka running: pid {st.pid}, bootstrap {st.bootstrap} "
                  f"({time.monotonic() - t0:.1f} s), home {st.home}")  # fmt: skip
            return 0
        if args.command == "stop":
            stopped = kafka.stop(timeout=args.timeout or 20.0)
            print("Kafka stopped" if stopped else "Kafka was not running")
            return 0
        st = kafka.status()
        if args.json:
            print(json.dumps(st.as_dict()))
        elif st.running:
            print(f"running: pid {st.pid}, bootstrap {st.bootstrap}, home {st.home}")
        else:
            print(f"not running (home {st.home})")
        return 0 if st.running else 3
    except LocalKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
