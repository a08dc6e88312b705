"""riva-serve under concurrent live calls, through NVIDIA's own client (`riva.client`
StreamingRecognize): N stereo calls streamed at real-time pace (100 ms chunks, LINEAR_PCM
16 kHz, 2 channels recognized separately, interim results on), for as long as asked (the
sample calls looped).

    python bench/bench_riva_calls.py [--calls 8] [--seconds 120] [--engine moonshine whisper]

For each engine a `callsense riva-serve` process starts (CALLSENSE_RIVA_SERVE_ASR_ENGINE) on a
free port. Prints the final results' latency after the end of speech (arrival wall time minus
the wall time at which the result's last word was spoken: includes the endpointer's silence),
p50/p95 over the run and by thirds of it (a backlog shows as latency growing), and the gap
between interim results of one utterance. The machine's load average is printed with each.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, percentile  # noqa: E402

from callsense.audio.decode import decode_audio  # noqa: E402

CHUNK = 1600  # 100 ms at 16 kHz


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def load() -> str:
    return "load average %.1f / %.1f / %.1f" % os.getloadavg()


def stereo_calls(seconds: float) -> list[np.ndarray]:
    """Each sample call looped to `seconds`, as interleaved s16le-ready (samples, 2) arrays."""
    out = []
    for path in sorted((REPO / "samples").glob("*.mp3")):
        ch = decode_audio(path.read_bytes()).channels  # (2, n) at 16 kHz
        reps = int(np.ceil(seconds * 16000 / ch.shape[1]))
        out.append(np.tile(ch, reps)[:, : int(seconds * 16000)].T.copy())
    return out


def stream_call(url: str, audio: np.ndarray, offset_s: float, results: list, interims: list) -> None:
    import riva.client

    asr = riva.client.ASRService(riva.client.Auth(uri=url))
    config = riva.client.StreamingRecognitionConfig(
        config=riva.client.RecognitionConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US",
            audio_channel_count=2, enable_separate_recognition_per_channel=True, enable_automatic_punctuation=True,
            enable_word_time_offsets=True, max_alternatives=1),
        interim_results=True)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    time.sleep(offset_s)
    t0 = time.time()

    def chunks():
        for k in range(0, pcm.shape[0], CHUNK):
            due = t0 + (k + CHUNK) / 16000
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            yield pcm[k:k + CHUNK].tobytes()

    last_interim: dict[int, float] = {}
    for resp in asr.streaming_response_generator(audio_chunks=chunks(), streaming_config=config):
        now = time.time()
        for r in resp.results:
            if not r.alternatives:
                continue
            alt = r.alternatives[0]
            if r.is_final:
                last_interim.pop(r.channel_tag, None)
                if alt.words:
                    spoken = t0 + alt.words[-1].end_time / 1000
                    results.append((spoken - t0, now - spoken))
            else:
                if r.channel_tag in last_interim:
                    interims.append(now - last_interim[r.channel_tag])
                last_interim[r.channel_tag] = now


def run(engine: str, calls: int, seconds: float, workers: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        log_path = Path(d) / "riva-serve.log"
        env = {**os.environ, "CALLSENSE_RIVA_SERVE_ASR_ENGINE": engine, "COLUMNS": "300"}
        proc = subprocess.Popen([sys.executable, "-m", "callsense", "riva-serve", "--port", str(port), "--workers", str(workers)],
                                env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 180
            while b"listening on" not in log_path.read_bytes():
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"riva-serve did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.2)
            audio = stereo_calls(seconds)
            results: list = []
            interims: list = []
            cpu0 = _cpu(proc.pid)
            start_load = load()
            threads = [threading.Thread(target=stream_call, args=(f"127.0.0.1:{port}", audio[i % len(audio)], 0.37 * i,
                                                                   results, interims)) for i in range(calls)]
            t_start = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.time() - t_start
            cpu = _cpu(proc.pid) - cpu0
            lat = [x * 1000 for _, x in results]
            print(f"\n== riva-serve ({engine}), {calls} stereo calls x {seconds:.0f} s at real-time pace, NVIDIA riva.client "
                  f"StreamingRecognize; {start_load} at the start, {load()} at the end")
            print(f"finals: {len(lat)}; end of speech -> final result p50 {percentile(lat, 0.5):.0f} ms, "
                  f"p95 {percentile(lat, 0.95):.0f} ms, max {max(lat, default=float('nan')):.0f} ms")
            timed = sorted(results)
            thirds = [timed[k * len(timed) // 3:(k + 1) * len(timed) // 3] for k in range(3)]
            print("p95 by time in the call: " + ", ".join(
                f"{p[0][0]:.0f}-{p[-1][0]:.0f} s: {percentile([x * 1000 for _, x in p], 0.95):.0f} ms" for p in thirds if p))
            print(f"interim results: {len(interims) + 0} gaps, p50 {percentile([x * 1000 for x in interims], 0.5):.0f} ms, "
                  f"p95 {percentile([x * 1000 for x in interims], 0.95):.0f} ms")
            print(f"riva-serve CPU {cpu:.0f} s over {took:.0f} s ({cpu / took:.2f} cores) for {calls * seconds:.0f} s of calls")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each call (the samples looped)")
    ap.add_argument("--engine", nargs="+", default=["moonshine"])
    ap.add_argument("--workers", type=int, default=None, help="riva-serve gRPC threads (default: 2 per call + 8)")
    args = ap.parse_args()
    for engine in args.engine:
        run(engine, args.calls, args.seconds, args.workers or 2 * args.calls + 8)


if __name__ == "__main__":
    main()
