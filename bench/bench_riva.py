"""riva-serve vs the embedded engine on ../shared/data/audio: real-time factor (offline and
streaming) and sentence-end -> final-result latency (streaming at real-time pace).

    python bench/bench_riva.py [--url HOST:PORT] [--no-paced]

Without --url a riva-serve starts in this process on a free loopback port (the same code
as `callsense riva-serve`); with --url the numbers are those of that server (a real Riva
on a GPU, say). Modes:

  embedded offline   WhisperEngine.transcribe on each clip, no network
  riva offline       RivaEngine.transcribe -> gRPC Recognize (LINEAR_PCM 16 kHz)
  embedded streaming the embedded engine behind the same VAD endpointer riva-serve uses,
                     in-process (what the live pipeline's VAD endpointing does)
  riva streaming     RivaEngine.transcribe_stream -> gRPC StreamingRecognize, 100 ms chunks,
                     interim results on

RTF = processing time / audio time (lower is faster; 0.1 = 10x real time); "CPU s/audio s"
is this process's CPU time per second of audio (client and in-process server together),
which a busy shared machine distorts less than wall time. Latency is
measured with chunks sent at real-time pace: wall time at which a final result arrives
minus the wall time at which its last word was spoken (includes endpointing silence).
"""

from __future__ import annotations

import argparse
import json
import time

import jiwer
import numpy as np
from _common import SHARED_AUDIO, percentile

from callsense.core.settings import Settings
from callsense.audio.decode import decode_audio

CHUNK = 1600  # 100 ms at 16 kHz


def clips() -> list[tuple[str, np.ndarray, str]]:
    out = []
    for line in (SHARED_AUDIO / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        channels = decode_audio((SHARED_AUDIO / item["audio"]).read_bytes()).channels
        audio = channels[item["channel"]] if item["channel"] is not None else channels.mean(axis=0)
        out.append((f"{item['audio']}:{item['channel'] if item['channel'] is not None else '-'}",
                    np.ascontiguousarray(audio, dtype=np.float32), item["text"]))
    return out


def norm(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).replace("-", " ").strip()


def offline(name: str, transcribe, data) -> dict:
    texts, per_clip = [], []
    t_all, cpu = time.perf_counter(), time.process_time()
    for _, audio, _ in data:
        t = time.perf_counter()
        texts.append(" ".join(s.text for s in transcribe(audio)))
        per_clip.append(time.perf_counter() - t)
    took = time.perf_counter() - t_all
    return {"mode": name, "took": took, "cpu": time.process_time() - cpu, "texts": texts, "per_clip": per_clip}


def paced(chunks_of, audio: np.ndarray, realtime: bool):
    """Yield 100 ms chunks; with `realtime`, each only once its audio has been spoken."""
    start = time.perf_counter()
    for i in range(0, audio.size, CHUNK):
        if realtime:
            due = start + (i + CHUNK) / 16000
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield chunks_of(audio[i:i + CHUNK])


def streaming(name: str, run_stream, data, realtime: bool) -> dict:
    """run_stream(chunk iterator) yields (is_final, text, last word end s)."""
    texts, latencies = [], []
    t_all, cpu = time.perf_counter(), time.process_time()
    for _, audio, _ in data:
        start = time.perf_counter()
        finals = []
        for is_final, text, word_end in run_stream(paced(lambda c: c, audio, realtime)):
            if is_final:
                finals.append(text)
                if realtime and word_end is not None:
                    latencies.append(time.perf_counter() - (start + word_end))
        texts.append(" ".join(finals))
    return {"mode": name, "took": time.perf_counter() - t_all, "cpu": time.process_time() - cpu, "texts": texts,
            "latencies": latencies}


def embedded_stream_runner(settings: Settings):
    from callsense.serve.riva.recognizer import EmbeddedRecognizer, RecognizeOptions
    from callsense.serve.riva.streaming import ChannelStream
    from callsense.ingest.stages.segment import endpointer_options
    from callsense.audio.vad import SileroModel

    recognizer, vad = EmbeddedRecognizer(settings), SileroModel()
    opts = RecognizeOptions(automatic_punctuation=True, word_time_offsets=True)

    def run(chunks):
        stream = ChannelStream(recognizer, vad, opts, endpointer_options(settings, live=True), interim=False, interim_every_s=1.0)
        for chunk in chunks:
            for r in stream.push(chunk):
                yield r.is_final, r.text, r.words[-1].end if r.words else r.end
        for r in stream.finish():
            yield r.is_final, r.text, r.words[-1].end if r.words else r.end

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an already running Riva server (default: start riva-serve in this process)")
    ap.add_argument("--no-paced", action="store_true", help="skip the real-time runs (latency); RTF only")
    args = ap.parse_args()

    from callsense.asr.base import create_asr_engine
    from callsense.asr.engines.riva import RivaEngine

    data = clips()
    audio_s = sum(a.size for _, a, _ in data) / 16000
    refs = [r for _, _, r in data]
    server = None
    if args.url is None:
        from callsense.serve.riva.server import RivaServer

        server = RivaServer(Settings(), host="127.0.0.1", port=0).start()
    url = args.url or server.address
    settings = Settings(riva_url=url, riva_timeout_s=300)
    try:
        embedded = create_asr_engine(Settings(asr_engine="whisper"))
        riva = RivaEngine(settings)

        def riva_stream(chunks, interim=True):
            for r in riva.transcribe_stream(chunks, interim_results=interim):
                yield r.is_final, r.text, r.words[-1].end if r.words else None

        # warm-up (model caches, gRPC channel)
        list(embedded.transcribe(data[0][1]))
        list(riva.transcribe(data[0][1]))
        runs = [
            offline("embedded offline", embedded.transcribe, data),
            offline("riva offline", riva.transcribe, data),
            streaming("embedded streaming", embedded_stream_runner(Settings()), data, realtime=False),
            streaming("riva streaming", riva_stream, data, realtime=False),
        ]
        paced_runs = [] if args.no_paced else [
            streaming("embedded streaming", embedded_stream_runner(Settings()), data, realtime=True),
            streaming("riva streaming", riva_stream, data, realtime=True),
        ]
    finally:
        if server is not None:
            server.stop()

    print(f"{len(data)} clips, {audio_s:.1f} s of audio; server {url} ({'in-process riva-serve' if server else 'external'})\n")
    print(f"{'mode':20s} {'RTF':>6s} {'x real time':>11s} {'CPU s/audio s':>13s} {'WER':>6s} {'per clip p50':>13s}")
    for r in runs:
        wer = jiwer.wer(refs, [norm(t) for t in r["texts"]])
        clip_p50 = f"{percentile(r['per_clip'], 0.5):.2f} s" if "per_clip" in r else "-"
        print(f"{r['mode']:20s} {r['took'] / audio_s:6.3f} {audio_s / r['took']:10.1f}x {r['cpu'] / audio_s:13.3f} "
              f"{wer * 100:5.1f}% {clip_p50:>13s}")
    if paced_runs:
        print("\nsentence end -> final result, chunks at real-time pace (100 ms):")
        print(f"{'mode':20s} {'finals':>6s} {'p50':>7s} {'p95':>7s} {'max':>7s}")
        for r in paced_runs:
            lat = r["latencies"]
            print(f"{r['mode']:20s} {len(lat):6d} {percentile(lat, 0.5):6.2f}s {percentile(lat, 0.95):6.2f}s {max(lat):6.2f}s")


if __name__ == "__main__":
    main()
