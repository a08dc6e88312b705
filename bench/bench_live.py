"""Live latency: from the end of a sentence in a live call to its row in the store, with
Kafka between every stage, N concurrent real-time calls.

    python bench/bench_live.py [--calls 8] [--engine moonshine] [--live-asr vad]
    python bench/bench_live.py --calls 8 --engine moonshine whisper   # both engines, one run each, same broker
    python bench/bench_live.py --calls 1 8 16                          # capacity
    python bench/bench_live.py --live-asr riva-streaming      # live calls streamed to Riva
    python bench/bench_live.py --calls 8 --page               # ... and until shown on the Live page

Starts a local Kafka broker and one `callsense worker` (all stages) as processes in a
temporary folder, streams the sample calls at real-time pace (100 ms chunks), and reads
`stored_at - ended_at` for every sentence. With `--engine riva` or `--live-asr
riva-streaming` it also starts a `callsense riva-serve` process (unless `--riva-url` names
a running Riva server) and points the worker at it.

- `--live-asr vad` (default): the segment stage ends utterances with the embedded VAD,
  the transcribe stage recognizes each one with `--engine`.
- `--live-asr riva-streaming`: the live-transcribe stage streams each call and channel to
  Riva; its endpointing gives the finals (`--engine` then only serves recorded calls).

With `--page` a `callsense dashboard` on the worker's store is open on the Live page in
headless Chromium (signed in as a manager, following the calls the page follows by default),
and each followed call's sentence is also timed from its end until its bubble shows on the
page: a script in the page notes when each bubble's text first appears (every 40 ms).
"""

from __future__ import annotations

import argparse
import contextlib
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


def load() -> str:
    return "load average %.1f / %.1f / %.1f" % os.getloadavg()


def interim_stats(settings: Settings, ids: list[str]) -> str:
    """Interim events of the run (topic <prefix>.interim): how many, and the gap between two
    interims of one open utterance."""
    from kafka import KafkaConsumer, TopicPartition

    from callsense.core.events import decode_event

    topic = settings.topic("interim")
    consumer = KafkaConsumer(bootstrap_servers=settings.pipeline.kafka_bootstrap.split(","), group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not parts:
        return "interims: none"
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    events = [decode_event(r.value) for r in consumer]
    consumer.close()
    events = [e for e in events if getattr(e, "call_id", None) in ids]
    gaps, last = [], {}
    for e in sorted(events, key=lambda e: e.at):
        key = (e.call_id, e.channel, e.index)
        if key in last:
            gaps.append((e.at - last[key]) * 1000)
        last[key] = e.at
    return (f"interims: {len(events)} for {len({(e.call_id, e.channel, e.index) for e in events})} utterances; "
            f"gap within an utterance p50 {percentile(gaps, 0.5):.0f} ms, p95 {percentile(gaps, 0.95):.0f} ms")


def topic_times(settings: Settings, name: str, ids: list[str]) -> dict[tuple, float]:
    """(call_id, channel, utterance index) -> the record's CreateTime (s) on <prefix>.<name>
    (the time the producing stage handed it to its Kafka producer)."""
    from kafka import KafkaConsumer, TopicPartition

    from callsense.core.events import decode_event

    topic = settings.topic(name)
    consumer = KafkaConsumer(bootstrap_servers=settings.pipeline.kafka_bootstrap.split(","), group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    out: dict[tuple, float] = {}
    heard = 0
    if parts:
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        for r in consumer:
            try:
                e = decode_event(r.value)
            except Exception:  # noqa: BLE001
                continue
            if getattr(e, "call_id", None) not in ids:
                continue
            if e.kind == "utterance_batch":
                heard += e.recognized is not None
                for u in e.utterances:
                    out.setdefault((e.call_id, e.channel, u.index), r.timestamp / 1000)
            elif e.kind in ("transcribed", "scored"):
                out.setdefault((e.call_id, e.channel, e.index), r.timestamp / 1000)
    consumer.close()
    if name == "utterances":
        out[("heard",)] = heard  # live utterances the segment stage's pause check recognized already
    return out


def hop_stats(settings: Settings, store, ids: list[str], seg: dict, tr: dict, sc: dict) -> str:
    """Per utterance: end of its speech (its end less the endpointer's padding) ->
    UtteranceBatch produced (segment: the endpointer's silence, VAD, and a sentence-pause
    check) -> TranscribedUtterance produced (transcribe) -> ScoredUtterance produced
    (sentiment) -> row stored (store), p50 / p95 of each hop in ms."""
    hops: dict[str, list[float]] = {k: [] for k in ("speech end->segment out", "segment out->transcribe out",
                                                    "transcribe out->sentiment out", "sentiment out->stored")}
    pad = settings.pipeline.vad_speech_pad_ms / 1000
    for i in ids:
        started = store.get_call(i).started_at
        for u in store.utterances(i):
            key = (i, u.channel, u.idx)
            if not all(key in m for m in (seg, tr, sc)):
                continue
            hops["speech end->segment out"].append((seg[key] - (started + u.end - pad)) * 1000)
            hops["segment out->transcribe out"].append((tr[key] - seg[key]) * 1000)
            hops["transcribe out->sentiment out"].append((sc[key] - tr[key]) * 1000)
            hops["sentiment out->stored"].append((u.stored_at - sc[key]) * 1000)
    return "  hops (per utterance, p50 / p95 ms): " + "; ".join(
        f"{k} {percentile(v, 0.5):.0f} / {percentile(v, 0.95):.0f}" for k, v in hops.items())


@contextlib.contextmanager
def live_page(settings: Settings, run_dir: Path):
    """The Live page open in headless Chromium on the run's store, noting when each sentence
    bubble's text first shows (`window.__seen`: text -> ms since the epoch)."""
    from bench_live_page import PASSWORD, USER, dashboard, open_live_page
    from playwright.sync_api import sync_playwright

    from callsense.dashboard.auth import UserDirectory

    UserDirectory(ResultStore(make_engine(settings.resolved_database_url)).engine).add_user(USER, PASSWORD, ["manager"], name="Bench")
    with dashboard(settings.data_dir, run_dir / "dashboard.log") as url, sync_playwright() as p:
        browser, page = open_live_page(p, url)
        # Keyed by the call's panel (`st-key-live-call-<id>`): calls streamed from one sample say the same sentences.
        page.evaluate("""() => { window.__seen = {}; setInterval(() => { const now = Date.now();
            document.querySelectorAll('[class*="st-key-live-call-"]').forEach(panel => {
              const key = [...panel.classList].find(c => c.startsWith('st-key-live-call-')).slice('st-key-live-call-'.length);
              if (!((key + '\\u0001') in window.__seen)) window.__seen[key + '\\u0001'] = now;  // the panel itself
              panel.querySelectorAll('.cs-bubble').forEach(b => { const t = key + '\\u0001' + b.innerText.trim();
                if (!(t in window.__seen)) window.__seen[t] = now; }); }); }, 40); }""")
        try:
            yield page
        finally:
            browser.close()


def page_stats(page, store, ids: list[str]) -> str:
    """Sentence end -> its bubble first shown on the Live page, for the sentences shown."""
    seen = page.evaluate("window.__seen")
    lat, followed = [], set()
    by_call: dict[str, list[tuple[str, float]]] = {}
    for key, t in seen.items():
        call_id, _, text = key.partition("\u0001")
        by_call.setdefault(call_id, []).append((text, t))
    for i in ids:
        # Only sentences said while the call's panel was on the page (a call followed later
        # shows its earlier sentences at once: no latency to measure there).
        panel_since = min((t for text, t in by_call.get(i, []) if text == ""), default=None)
        for s in store.sentences(i):
            shown = [t for text, t in by_call.get(i, []) if text and text.startswith(s.text.strip())]
            if shown and s.ended_at and panel_since is not None and s.ended_at >= panel_since / 1000:
                lat.append(min(shown) / 1000 - s.ended_at)
                followed.add(i)
    if not lat:
        return "Live page: no sentence of these calls was shown (the page follows 2 calls by default)"
    return (f"sentence end -> shown on the Live page (Chromium; {len(lat)} sentences of the {len(followed)} followed calls): "
            f"p50 {percentile(lat, 0.5) * 1000:.0f} ms, p95 {percentile(lat, 0.95) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms")


def run(args, kafka: LocalKafka, home: Path, engine: str, calls: int, samples: list[Path]) -> None:
    needs_riva = engine == "riva" or args.live_asr == "riva-streaming"
    workers, riva = [], None
    stack = contextlib.ExitStack()
    run_dir = home / f"{engine}-{calls}"
    prefix = f"b{engine[:3]}{calls}"
    try:
        settings = Settings(data_dir=run_dir / "data", kafka_bootstrap=kafka.bootstrap, kafka_partitions=4, topic_prefix=prefix)
        extra = dict(kv.split("=", 1) for kv in args.extra_env)
        env = {**os.environ, "CALLSENSE_DATA_DIR": str(settings.data_dir), "CALLSENSE_KAFKA_BOOTSTRAP": kafka.bootstrap,
               "CALLSENSE_TOPIC_PREFIX": prefix, "CALLSENSE_ASR_ENGINE": engine, "CALLSENSE_LIVE_ASR": args.live_asr, **extra}
        run_dir.mkdir(parents=True)
        if needs_riva:
            if args.riva_url:
                env["CALLSENSE_RIVA_URL"] = args.riva_url
            else:
                riva, env["CALLSENSE_RIVA_URL"] = start_riva_serve(run_dir, {**os.environ, **extra},
                                                                   args.riva_serve_workers or 2 * calls + 8)
        ensure_topics(settings)
        workers = [subprocess.Popen([sys.executable, "-m", "callsense", "worker", "--stages", "all"], env=env,
                                    stdout=open(run_dir / f"worker{k}.log", "wb"), stderr=subprocess.STDOUT)
                   for k in range(args.workers)]
        worker = workers[0]
        time.sleep(8 + 4 * (args.workers - 1))  # models load before the calls start
        page = stack.enter_context(live_page(settings, run_dir)) if args.page else None
        pub = KafkaPublisher(settings)
        ids = [f"bench-live-{i}" for i in range(calls)]

        def stream(i: int) -> None:
            for chunk in live_chunks(samples[i % len(samples)], call_id=ids[i], chunk_ms=args.chunk_ms, agent_id=f"a{i}"):
                pub.publish([chunk])

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(calls)]
        t0 = time.time()
        load_start = load()
        for t in threads:
            t.start()
            time.sleep(0.37)  # calls do not all start on the same chunk boundary
        for t in threads:
            t.join()
        pub.flush()
        load_end = load()
        store = ResultStore(make_engine(settings.resolved_database_url))
        deadline = time.time() + 120
        while time.time() < deadline and not all((c := store.get_call(i)) and c.status == "done" for i in ids):
            time.sleep(0.5)
        lat = [(s.stored_at - s.ended_at) * 1000 for i in ids for s in store.sentences(i) if s.ended_at]
        how = "Riva streaming (riva-serve)" if args.live_asr == "riva-streaming" and not args.riva_url else \
            "Riva streaming" if args.live_asr == "riva-streaming" else f"VAD + engine {engine}"
        print(f"\n== {calls} concurrent real-time calls, {args.workers} worker process(es), live ASR: {how}, {args.chunk_ms} ms chunks, "
              f"{len(lat)} sentences in {time.time() - t0:.0f} s; {load_start} at the start, {load_end} at the end")
        if not lat:
            print("no sentences stored; worker log tail:\n" + (run_dir / "worker0.log").read_text(errors="replace")[-2000:])
            return
        print(f"sentence end -> stored row: p50 {percentile(lat, 0.5):.0f} ms, p95 {percentile(lat, 0.95):.0f} ms, "
              f"max {max(lat):.0f} ms")
        print(f"(includes the endpointer's {settings.pipeline.live_min_silence_ms} ms of silence that ends an utterance)")
        # A backlog shows as latency growing over the run; a fixed cost as a flat line.
        timed = sorted(((s.ended_at - t0), (s.stored_at - s.ended_at) * 1000) for i in ids for s in store.sentences(i) if s.ended_at)
        thirds = [timed[k * len(timed) // 3:(k + 1) * len(timed) // 3] for k in range(3)]
        print("p50 by sentence end time: " + ", ".join(
            f"{part[0][0]:.0f}-{part[-1][0]:.0f} s: {percentile([x for _, x in part], 0.5):.0f} ms" for part in thirds if part))
        # Where the time goes: a sentence waits for the rest of its utterance and the endpointer's
        # silence (or a sentence pause) until the segment stage sends the utterance on, then the
        # pipeline. Times of sending: the records' CreateTime on each topic.
        seg, tr, sc = (topic_times(settings, t, ids) for t in ("utterances", "transcripts", "results"))
        pipe, wait = [], []
        for i in ids:
            for s in store.sentences(i):
                sent = seg.get((i, s.channel, s.utterance_idx))
                if s.ended_at and sent is not None:
                    wait.append((sent - s.ended_at) * 1000)
                    pipe.append((s.stored_at - sent) * 1000)
        print(f"  of which: sentence end -> its utterance sent on by the segment stage p50 {percentile(wait, 0.5):.0f} ms, "
              f"p95 {percentile(wait, 0.95):.0f} ms; sent on -> stored p50 {percentile(pipe, 0.5):.0f} ms, "
              f"p95 {percentile(pipe, 0.95):.0f} ms")
        print(hop_stats(settings, store, ids, seg, tr, sc))
        live = Settings(**{k[len("CALLSENSE_"):].lower(): v for k, v in extra.items() if k.startswith("CALLSENSE_")}).pipeline
        print(f"  endpointer silence {live.live_min_silence_ms} ms, sentence pause {live.live_sentence_pause_ms or 'off'}"
              f"{' ms' if live.live_sentence_pause_ms else ''}; utterances recognized once, at a pause, by the segment stage: "
              f"{seg.get(('heard',), 0)} of {sum(1 for k in seg if len(k) == 3)}")
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = 0.0
        for w in workers:
            fields = Path(f"/proc/{w.pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu_s += (int(fields[11]) + int(fields[12])) / ticks
        audio_s = sum(store.get_call(i).duration_s or 0 for i in ids)
        print(f"worker CPU {cpu_s:.0f} s for {audio_s:.0f} s of calls ({cpu_s / max(audio_s, 1e-9):.3f} CPU-s per call-s, model loading included)")
        print(interim_stats(settings, ids))
        if page is not None:
            print(page_stats(page, store, ids))
    finally:
        stack.close()
        for proc in (*workers, riva):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, nargs="+", default=[8], help="concurrent calls; several numbers: one run each")
    ap.add_argument("--engine", nargs="+", default=[Settings().asr.engine],
                    help="ASR engine(s); several: one run each, side by side (e.g. --engine moonshine whisper)")
    ap.add_argument("--chunk-ms", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="`callsense worker` processes (all stages each; calls split by partition)")
    ap.add_argument("--live-asr", choices=["vad", "riva-streaming"], default="vad",
                    help="how live calls are recognized (CALLSENSE_LIVE_ASR)")
    ap.add_argument("--riva-url", default=None, help="a running Riva server (default: start `callsense riva-serve` when needed)")
    ap.add_argument("--riva-serve-workers", type=int, default=None, help="riva-serve gRPC threads (default: 2 per call + 8)")
    ap.add_argument("--extra-env", nargs="*", default=[], help="KEY=VALUE for the worker (and riva-serve)")
    ap.add_argument("--page", action="store_true", help="also time each followed call's sentence until the Live page "
                                                        "in headless Chromium shows it")
    args = ap.parse_args()
    samples = sorted((REPO / "samples").glob("*.mp3"))
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        kafka = LocalKafka(home=home / "kafka", port=free_port(), controller_port=free_port(), jars=fetch_jars(default_jar_cache()))
        kafka.start(timeout=120)
        try:
            for calls in args.calls:
                for engine in args.engine:
                    run(args, kafka, home, engine, calls, samples)
        finally:
            kafka.stop()


if __name__ == "__main__":
    main()
