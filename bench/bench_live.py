"""Live latency: from the end of a sentence in a live call to its row in the store, with
Kafka between every stage, N concurrent real-time calls.

    python bench/bench_live.py [--calls 8] [--engine whisper]

Starts a local Kafka broker and one `callsense worker` (all stages) as processes in a
temporary folder, streams the sample calls at real-time pace (100 ms chunks), and reads
`stored_at - ended_at` for every sentence.
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

from callsense.config import Settings
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--engine", default="whisper")
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--extra-env", nargs="*", default=[], help="KEY=VALUE for the worker")
    args = ap.parse_args()
    samples = sorted((REPO / "samples").glob("*.mp3"))
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        kafka = LocalKafka(home=home / "kafka", port=free_port(), controller_port=free_port(), jars=fetch_jars(default_jar_cache()))
        kafka.start(timeout=120)
        worker = None
        try:
            settings = Settings(data_dir=home / "data", kafka_bootstrap=kafka.bootstrap, kafka_partitions=4)
            env = {**os.environ, "CALLSENSE_DATA_DIR": str(settings.data_dir), "CALLSENSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
                   "CALLSENSE_ASR_ENGINE": args.engine, **dict(kv.split("=", 1) for kv in args.extra_env)}
            ensure_topics(settings)
            worker = subprocess.Popen([sys.executable, "-m", "callsense", "worker"], env=env,
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
            print(f"{args.calls} concurrent real-time calls, engine {args.engine}, {args.chunk_ms} ms chunks, "
                  f"{len(lat)} sentences in {time.time() - t0:.0f} s")
            print(f"sentence end -> stored row: p50 {percentile(lat, 0.5):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, "
                  f"max {max(lat):.0f} ms")
            print(f"(includes the endpointer's {settings.live_min_silence_ms} ms of silence that ends an utterance)")
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=30)
            kafka.stop()


if __name__ == "__main__":
    main()
