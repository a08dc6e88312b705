"""Fault benchmark (issue 11 §2): outages are survived, not crashed through.

Scenarios (each on its own broker / PostgreSQL, started here and stopped by PID):
  broker   a worker, `stream-live` and `produce` running; the broker stopped for --broker-outage-s (60) mid-stream
  pg-process   `callsense process` on the sample calls; PostgreSQL stopped for --pg-outage-s (30) mid-run
  pg-worker    a worker storing into PostgreSQL; PostgreSQL stopped for --pg-outage-s mid-stream

Prints, per scenario: calls expected, stored done, lost (no row), stuck (not done), duplicate
utterance rows, tracebacks seen in every process's output, exit statuses, wall time.

    python bench/bench_faults.py [--scenarios broker,pg-process,pg-worker] [--broker-outage-s 60] [--pg-outage-s 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from _common import REPO

sys.path.insert(0, str(REPO / "tests" / "ingest"))
sys.path.insert(0, str(REPO / "tests"))
from outage_support import StoppablePostgres, stoppable_kafka, tracebacks  # noqa: E402

SAMPLES = [REPO / "samples" / n for n in ("billing-double-charge.mp3", "late-delivery.mp3", "router-setup.mp3",
                                          "stereo_diarization.wav")]


def _env(tmp: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSENSE_")}
    env.update({"CALLSENSE_TOPIC_PREFIX": f"b{uuid.uuid4().hex[:8]}", "CALLSENSE_DATA_DIR": str(tmp / "data"),
                "CALLSENSE_KAFKA_PARTITIONS": "2", "COLUMNS": "200", **extra})
    return env


def _start(args, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "callsense", *args], env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> int | None:
    from process_support import stop_process

    stop_process(proc)
    return proc.returncode


def _wait(pred, timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return True
        except Exception:  # noqa: BLE001 - the store may be unreachable right now
            pass
        time.sleep(interval)
    return False


def _store(url: str):
    from callsense.store.db import make_engine
    from callsense.store.repository import ResultStore

    return ResultStore(make_engine(url))


def _utterances(store) -> list[tuple]:
    from sqlalchemy import select
    from sqlmodel import Session

    from callsense.store.schema import Utterance

    with Session(store.engine) as s:
        return s.exec(select(Utterance.call_id, Utterance.channel, Utterance.idx)).all()


def _verdict(name: str, store, call_ids: list[str], logs: list[Path], statuses: dict, t0: float, deadline_s: float) -> dict:
    _wait(lambda: all((c := store.get_call(i)) is not None and c.status == "done" for i in call_ids), deadline_s)
    calls = {i: store.get_call(i) for i in call_ids}
    utts = _utterances(store)
    dup = sum(n - 1 for n in Counter(utts).values() if n > 1)
    text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
    return {"scenario": name, "calls": len(call_ids), "done": sum(1 for c in calls.values() if c and c.status == "done"),
            "lost": sum(1 for c in calls.values() if c is None), "stuck": sum(1 for c in calls.values() if c and c.status != "done"),
            "duplicate_utterances": dup, "tracebacks": tracebacks(text), "exit": statuses,
            "outage_lines": text.count("unreachable"), "back_lines": text.count("back after"),
            "wall_s": round(time.monotonic() - t0, 1)}


def broker_scenario(tmp: Path, outage_s: float) -> dict:
    kafka = stoppable_kafka(tmp / "kafka")
    kafka.start(timeout=120)
    env = _env(tmp, CALLSENSE_KAFKA_BOOTSTRAP=kafka.bootstrap)
    t0 = time.monotonic()
    logs = [tmp / "worker.log", tmp / "live.log", tmp / "produce.log"]
    worker = _start(["worker"], env, logs[0])
    try:
        live = _start(["stream-live", str(SAMPLES[2]), "--call-id", "live-fault"], env, logs[1])
        produce = subprocess.run([sys.executable, "-m", "callsense", "produce", *map(str, SAMPLES[:2])], env=env,
                                 capture_output=True, text=True, timeout=300)
        logs[2].write_text(produce.stdout + produce.stderr)
        ids = [ln.split("as call ")[1].strip() for ln in produce.stdout.splitlines() if "as call " in ln] + ["live-fault"]
        store = _store(f"sqlite:///{tmp / 'data' / 'callsense.db'}")
        _wait(lambda: len(_utterances(store)) >= 1, 300)
        kafka.stop()
        time.sleep(outage_s)  # the outage
        kafka.start(timeout=120)
        live_rc = live.wait(timeout=outage_s + 300)
        result = _verdict("broker stopped mid-stream", store, ids, logs,
                          {"produce": produce.returncode, "stream-live": live_rc}, t0, 900)
    finally:
        worker_rc = _stop(worker)
        kafka.stop()
    result["exit"]["worker (SIGTERM)"] = worker_rc
    result["tracebacks"] = tracebacks("".join(p.read_text(errors="replace") for p in logs if p.exists()))
    return result


def pg_process_scenario(tmp: Path, outage_s: float) -> dict:
    pg = StoppablePostgres()
    try:
        env = _env(tmp, CALLSENSE_DATABASE_URL=pg.url)
        t0 = time.monotonic()
        log = tmp / "process.log"
        proc = _start(["process", *map(str, SAMPLES)], env, log)
        store = _store(pg.url)
        _wait(lambda: len(_utterances(store)) >= 1, 600)
        store.engine.dispose()
        pg.stop()
        time.sleep(outage_s)  # the outage
        pg.start()
        rc = proc.wait(timeout=1200)
        from sqlalchemy import select
        from sqlmodel import Session

        from callsense.store.schema import Call

        with Session(store.engine) as s:
            by_name = {n: i for i, n in s.exec(select(Call.id, Call.source_name)).all()}
        ids = [by_name.get(p.name, f"(missing {p.name})") for p in SAMPLES]
        return _verdict("PostgreSQL stopped during process", store, ids, [log], {"process": rc}, t0, 30)
    finally:
        pg.close()


def pg_worker_scenario(tmp: Path, outage_s: float) -> dict:
    pg = StoppablePostgres()
    kafka = stoppable_kafka(tmp / "kafka")
    kafka.start(timeout=120)
    try:
        env = _env(tmp, CALLSENSE_KAFKA_BOOTSTRAP=kafka.bootstrap, CALLSENSE_DATABASE_URL=pg.url)
        t0 = time.monotonic()
        logs = [tmp / "worker.log", tmp / "produce.log"]
        worker = _start(["worker"], env, logs[0])
        result: dict = {"exit": {}}
        try:
            produce = subprocess.run([sys.executable, "-m", "callsense", "produce", *map(str, SAMPLES)], env=env,
                                     capture_output=True, text=True, timeout=300)
            logs[1].write_text(produce.stdout + produce.stderr)
            ids = [ln.split("as call ")[1].strip() for ln in produce.stdout.splitlines() if "as call " in ln]
            store = _store(pg.url)
            _wait(lambda: len(_utterances(store)) >= 1, 600)
            store.engine.dispose()
            pg.stop()
            time.sleep(outage_s)  # the outage
            pg.start()
            result = _verdict("PostgreSQL stopped during worker", store, ids, logs, {"produce": produce.returncode}, t0, 900)
        finally:
            result["exit"]["worker (SIGTERM)"] = _stop(worker)
        return result
    finally:
        kafka.stop()
        pg.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="broker,pg-process,pg-worker")
    ap.add_argument("--broker-outage-s", type=float, default=60)
    ap.add_argument("--pg-outage-s", type=float, default=30)
    args = ap.parse_args()
    runs = {"broker": lambda t: broker_scenario(t, args.broker_outage_s),
            "pg-process": lambda t: pg_process_scenario(t, args.pg_outage_s),
            "pg-worker": lambda t: pg_worker_scenario(t, args.pg_outage_s)}
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix=f"bench-faults-{name}-") as tmp:
            r = runs[name](Path(tmp))
        print(f"{r['scenario']}: {r['calls']} calls, {r['done']} done, lost {r['lost']}, stuck {r['stuck']}, "
              f"duplicate utterance rows {r['duplicate_utterances']}, tracebacks {r['tracebacks']}, "
              f"outage/back log lines {r['outage_lines']}/{r['back_lines']}, exit {r['exit']}, {r['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
