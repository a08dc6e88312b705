"""Live latency: from the end of a sentence in a live call to its row in the store, with
Kafka between every stage, N concurrent real-time calls.

    python bench/bench_live.py [--calls 8] [--engine whisper] [--live-asr vad]
    python bench/bench_live.py --live-asr riva-streaming      # live calls streamed to Riva

Starts a local Kafka broker and one `callsense worker` (all stages) as processes in a
temporary folder, streams the sample calls at real-time pace (100 ms chunks), and reads
`stored_at - ended_at` for every sentence. With `--engine riva` or `--live-asr
riva-streaming` it also starts a `callsense riva-serve` process (unless `--riva-url` names
a running Riva server) and points the worker at it.

- `--live-asr vad` (default): the segment stage ends utterances with the embedded VAD,
  the transcribe stage recognizes each one with `--engine`.
- `--live-asr riva-streaming`: the live-transcribe stage streams each call and channel to
  Riva; its endpointing gives the finals (`--engine` then only serves recorded calls).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO, percentile

from callsense.core.settings import Settings
from callsense.ingest.broker.local import LocalKafka, default_jar_cache, fetch_jars
from callsense.ingest.sources import live_chunks
from callsense.ingest.transports.kafka import KafkaPublisher, ensure_topics
from callsense.store.db import make_engine
from callsense.store.repository import ResultStore


def free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_riva_serve(home: Path, env: dict, workers: int) -> tuple[subprocess.Popen, str]:
    """`callsense riva-serve` on a free port; returns once it listens (its log: home/riva-serve.log)."""
    port = free_port()
    log_path = home / "riva-serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "callsense", "riva-serve", "--port", str(port), "--workers", str(workers)],
                            env={**env, "COLUMNS": "300"}, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while b"listening on" not in log_path.read_bytes():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise SystemExit(f"riva-serve did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.2)
    return proc, f"127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--engine", default="whisper")
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--live-asr", choices=["vad", "riva-streaming"], default="vad",
                    help="how live calls are recognized (CALLSENSE_LIVE_ASR)")
    ap.add_argument("--riva-url", default=None, help="a running Riva server (default: start `callsense riva-serve` when needed)")
    ap.add_argument("--riva-serve-workers", type=int, default=None, help="riva-serve gRPC threads (default: 2 per call + 8)")
    ap.add_argument("--extra-env", nargs="*", default=[], help="KEY=VALUE for the worker (and riva-serve)")
    args = ap.parse_args()
    needs_riva = args.engine == "riva" or args.live_asr == "riva-streaming"
    samples = sorted((REPO / "samples").glob("*.mp3"))
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        kafka = LocalKafka(home=home / "kafka", port=free_port(), controller_port=free_port(), jars=fetch_jars(default_jar_cache()))
        kafka.start(timeout=120)
        worker = riva = None
        try:
            settings = Settings(data_dir=home / "data", kafka_bootstrap=kafka.bootstrap, kafka_partitions=4)
            extra = dict(kv.split("=", 1) for kv in args.extra_env)
            env = {**os.environ, "CALLSENSE_DATA_DIR": str(settings.data_dir), "CALLSENSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
                   "CALLSENSE_ASR_ENGINE": args.engine, "CALLSENSE_LIVE_ASR": args.live_asr, **extra}
            if needs_riva:
                if args.riva_url:
                    env["CALLSENSE_RIVA_URL"] = args.riva_url
                else:
                    riva, env["CALLSENSE_RIVA_URL"] = start_riva_serve(home, {**os.environ, **extra},
                                                                       args.riva_serve_workers or 2 * args.calls + 8)
            ensure_topics(settings)
            worker = subprocess.Popen([sys.executable, "-m", "callsense", "worker", "--stages", "all"], env=env,
                                      stdout=open(home / "worker.log", "wb"), stderr=subprocess.STDOUT)
            time.sleep(8)  # models load before the calls start
            pub = KafkaPublisher(settings)
            ids = [f"bench-live-{i}" for i in range(args.calls)]

            def stream(i: int) -> None:
                for chunk in live_chunks(samples[i % len(samples)], call_id=ids[i], chunk_ms=args.chunk_ms, agent_id=f"a{i}"):
                    pub.publish([chunk])

            threads = [threading.Thread(target=stream, args=(i,)) for i in range(args.calls)]
            t0 = time.time()
            for t in threads:
                t.start()
                time.sleep(0.37)  # calls do not all start on the same chunk boundary
            for t in threads:
                t.join()
            pub.flush()
            store = ResultStore(make_engine(settings.resolved_database_url))
            deadline = time.time() + 120
            while time.time() < deadline and not all((c := store.get_call(i)) and c.status == "done" for i in ids):
                time.sleep(0.5)
            lat = [(s.stored_at - s.ended_at) * 1000 for i in ids for s in store.sentences(i) if s.ended_at]
            how = "Riva streaming (riva-serve)" if args.live_asr == "riva-streaming" and not args.riva_url else \
                "Riva streaming" if args.live_asr == "riva-streaming" else f"VAD + engine {args.engine}"
            print(f"{args.calls} concurrent real-time calls, live ASR: {how}, {args.chunk_ms} ms chunks, "
                  f"{len(lat)} sentences in {time.time() - t0:.0f} s")
            print(f"sentence end -> stored row: p50 {percentile(lat, 0.5):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, "
                  f"max {max(lat):.0f} ms")
            print(f"(includes the endpointer's {settings.pipeline.live_min_silence_ms} ms of silence that ends an utterance)")
            # A backlog shows as latency growing over the run; a fixed cost as a flat line.
            timed = sorted(((s.ended_at - t0), (s.stored_at - s.ended_at) * 1000) for i in ids for s in store.sentences(i) if s.ended_at)
            thirds = [timed[k * len(timed) // 3:(k + 1) * len(timed) // 3] for k in range(3)]
            print("p50 by sentence end time: " + ", ".join(
                f"{part[0][0]:.0f}-{part[-1][0]:.0f} s: {percentile([x for _, x in part], 0.5):.0f} ms" for part in thirds if part))
        finally:
            for proc in (worker, riva):
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=30)
            kafka.stop()


if __name__ == "__main__":
    main()
