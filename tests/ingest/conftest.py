"""Pipeline processes for the integration tests: `callsense worker` subprocesses against the
session's real Kafka broker, each test in its own topics and store."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from process_support import stop_process

from callsense.core.settings import Settings


@dataclass
class PipelineEnv:
    settings: Settings
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "callsense", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def start_worker(self, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "callsense", "worker", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker_log(self, i: int = -1) -> str:
        logs = sorted(self.logs.glob("worker-*.log"))
        return logs[i].read_text(errors="replace")[-4000:] if logs else ""

    def stop_all(self) -> None:
        for p in self.procs:
            stop_process(p)


@pytest.fixture
def pipeline_env(kafka_bootstrap, tmp_path) -> PipelineEnv:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CALLSENSE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CALLSENSE_TOPIC_PREFIX": prefix,
        "CALLSENSE_DATA_DIR": str(tmp_path / "data"),
        "CALLSENSE_KAFKA_PARTITIONS": "2",
        "COLUMNS": "200",
    }
    env.pop("CALLSENSE_DATABASE_URL", None)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix, data_dir=tmp_path / "data", kafka_partitions=2)
    logs = tmp_path / "logs"
    logs.mkdir()
    pe = PipelineEnv(settings, env, logs)
    yield pe
    pe.stop_all()
