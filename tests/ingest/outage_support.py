"""Servers a test can take away and bring back: a PostgreSQL cluster and a Kafka broker of
its own (own folder, own ports), started as plain processes and stopped by PID, started
again on the same ports with the same data. Also used by bench/bench_faults.py."""

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
from pathlib import Path

from callsense.ingest.broker.local import LocalKafka, default_jar_cache, fetch_jars


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def pg_bin_dir() -> Path:
    if os.environ.get("CALLSENSE_PG_BIN"):
        return Path(os.environ["CALLSENSE_PG_BIN"])
    for version in ("15", "16", "17", "14", "13"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        if (candidate / "postgres").is_file():
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server binaries not found")


class StoppablePostgres:
    """A throw-away cluster (trust auth, loopback, like tests/conftest.py's) that can be
    stopped (SIGINT to the postmaster's PID: fast shutdown) and started again."""

    def __init__(self):
        self.bin = pg_bin_dir()
        self.as_user: list[str] = []
        self.owner = None
        if os.geteuid() == 0:
            self.owner = pwd.getpwnam("postgres")
            self.as_user = ["setpriv", f"--reuid={self.owner.pw_uid}", f"--regid={self.owner.pw_gid}", "--init-groups", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="callsense-pg-outage-"))
        self.data, self.sock, self.log = self.root / "data", self.root / "sock", self.root / "postgres.log"
        self.sock.mkdir()
        if self.owner is not None:
            for p in (self.root, self.sock):
                os.chown(p, self.owner.pw_uid, self.owner.pw_gid)
        self.env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self.owner is not None:
            self.env["HOME"] = self.owner.pw_dir
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None
        init = subprocess.run([*self.as_user, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                               "-E", "UTF8", "--locale=C", "--no-sync"], env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, cwd=self.root)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        self.start()
        self._sql("CREATE DATABASE callsense_test")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/callsense_test"

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=2,
                             autocommit=True) as conn:
            conn.execute(statement)

    def start(self, timeout: float = 60) -> None:
        import psycopg

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.as_user, str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sock),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                     connect_timeout=2):
                    return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start in {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def stoppable_kafka(home: Path) -> LocalKafka:
    """A broker of its own on free ports; `.stop()` and `.start()` again keep its data."""
    port, controller = free_ports(2)
    return LocalKafka(home=home, port=port, controller_port=controller, jars=fetch_jars(default_jar_cache()))


def tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")
