"""Two-speaker diarization of mono calls (CALLSENSE_DIARIZE_MONO, audio/diarize.py): the
diarization error rate on calls the project builds from its own stereo recordings.

The evaluation set (nothing from outside the repository and ../shared/data/audio):
- stereo: the sample calls (samples/*.mp3: espeak-ng, agent en-us on channel 0, customer en-gb
  on channel 1, turns apart) and stereo_diarization.wav (two real voices, one per channel,
  speaking at the same time for 2.6 of its 5 s);
- built: two-voice calls assembled from the one-speaker recordings of ../shared/data/audio
  (speechbrain's spk1 and spk2, LJ Speech, JFK): their phrases alternate, one voice per channel,
  0.3 s and 0.8 s apart in turn (a 0.3 s gap is shorter than the endpointer's 500 ms, so the
  utterance holds both voices and must be cut);
- one voice: jfk.flac, LJ050-0131.wav and spk1's four sentences: the diarizer has no test for
  one voice and splits them too; their DER is what such a recording costs with the setting on.
Reference: each channel's utterances as the segment stage cuts a stereo call (Silero VAD of that
channel alone, the pipeline's endpointer settings). The channels are mixed down to mono (their
mean) and diarized with the same settings; the hypothesis is the utterances the segment stage
emits for the mono call with CALLSENSE_DIARIZE_MONO.
DER = (missed speech + false alarm + confusion) / reference speech, with the best one-to-one
speaker mapping, frames within +-0.25 s of a reference boundary not scored, overlap scored
(audio/diarization_error.py: no maintained scorer is installed). The diarizer's options were
tuned on these same calls (the project has no other set): figures for real calls will be worse.

    python bench/bench_diarization.py [--collar 0.25] [--window-s 1.5] [--min-turn-s 1.0] [--bic-penalty 2.0]
                                      [--json results.json]   (--help lists every DiarizerOptions field)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, SHARED_AUDIO  # noqa: E402

from callsense.audio.decode import decode_audio  # noqa: E402
from callsense.audio.diarization_error import DiarizationError, Turn, diarization_error  # noqa: E402
from callsense.audio.diarize import DiarizerOptions, diarize  # noqa: E402
from callsense.audio.vad import RATE, EndpointerOptions, SileroModel, speech_spans  # noqa: E402
from callsense.core.settings import Settings  # noqa: E402
from callsense.ingest.stages.segment import endpointer_options  # noqa: E402

PHRASES_VAD = EndpointerOptions(min_silence_ms=300, speech_pad_ms=100, min_speech_ms=250)
BUILT = {  # name -> (voice on channel 0, voice on channel 1)
    "spk1-spk2": (["spk1_snt1.wav", "spk1_snt3.wav", "spk1_snt4.wav", "spk1_snt5.wav"], ["spk2_snt2.wav", "spk2_snt4.wav"]),
    "jfk-lj": (["jfk.flac"], ["LJ050-0131.wav"]),
    "lj-spk1": (["LJ050-0131.wav"], ["spk1_snt1.wav", "spk1_snt3.wav", "spk1_snt4.wav"]),
    "spk2-jfk": (["spk2_snt2.wav", "spk2_snt4.wav"], ["jfk.flac"]),
}
ONE_VOICE = {"jfk": ["jfk.flac"], "lj": ["LJ050-0131.wav"], "spk1": ["spk1_snt1.wav", "spk1_snt3.wav", "spk1_snt4.wav", "spk1_snt5.wav"]}


def _decode(path: Path) -> np.ndarray:
    return decode_audio(path.read_bytes()).channels


def _phrases(files: list[str], vad: SileroModel) -> list[np.ndarray]:
    out = []
    for name in files:
        audio = _decode(SHARED_AUDIO / name)[0]
        out += [audio[s.start:s.end] for s in speech_spans(audio, vad, PHRASES_VAD)]
    return out


def built_call(a: list[str], b: list[str], vad: SileroModel) -> np.ndarray:
    """(2, samples): the two voices' phrases in turn, one voice per channel."""
    pa, pb = _phrases(a, vad), _phrases(b, vad)
    chans: list[list[np.ndarray]] = [[], []]
    turn = 0
    lead = np.zeros(int(0.5 * RATE), np.float32)
    chans[0].append(lead)
    chans[1].append(lead)
    order = [(0, p) for p in pa]
    for i, p in enumerate(pb):  # interleave: a, b, a, b, ... then the rest
        order.insert(2 * i + 1, (1, p))
    for c, phrase in order:
        gap = np.zeros(int((0.3 if turn % 2 == 0 else 0.8) * RATE), np.float32)
        turn += 1
        chans[c] += [phrase, gap]
        chans[1 - c] += [np.zeros(phrase.size, np.float32), gap]
    return np.stack([np.concatenate(ch) for ch in chans])


def evaluation_set(vad: SileroModel) -> list[tuple[str, str, np.ndarray]]:
    """(group, name, (channels, samples))."""
    calls = [("stereo", p.stem, _decode(p)) for p in sorted((REPO / "samples").glob("*.mp3"))]
    stereo = SHARED_AUDIO / "stereo_diarization.wav"
    if not stereo.exists():
        stereo = REPO / "samples" / "stereo_diarization.wav"
    calls.append(("stereo", stereo.stem, _decode(stereo)))
    calls += [("built", name, built_call(a, b, vad)) for name, (a, b) in BUILT.items()]
    for name, files in ONE_VOICE.items():
        gap = np.zeros(int(0.5 * RATE), np.float32)
        calls.append(("one voice", name, np.concatenate([x for f in files for x in (_decode(SHARED_AUDIO / f)[0], gap)])[None]))
    return calls


def reference_turns(channels: np.ndarray, vad: SileroModel, endpointer: EndpointerOptions) -> list[Turn]:
    return [Turn(s.start / RATE, s.end / RATE, f"ch{c}") for c in range(channels.shape[0])
            for s in speech_spans(channels[c], vad, endpointer)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = DiarizerOptions()
    ap.add_argument("--collar", type=float, default=0.25, help="seconds not scored either side of a reference boundary")
    for field in dataclasses.fields(DiarizerOptions):
        ap.add_argument(f"--{field.name.replace('_', '-')}", type=type(getattr(defaults, field.name)),
                        default=getattr(defaults, field.name), help=f"DiarizerOptions.{field.name}")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    opts = DiarizerOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DiarizerOptions)})
    endpointer = endpointer_options(Settings())
    vad = SileroModel()
    calls = evaluation_set(vad)
    print(f"{opts}\ncollar +-{args.collar} s; load average %.2f %.2f %.2f" % os.getloadavg())
    print(f"{'group':10} {'call':24} {'audio s':>7} {'found':>5} {'DER %':>6} {'miss %':>6} {'FA %':>5} "
          f"{'conf %':>6} {'first=ch0':>9} {'RTF':>6}")
    totals: dict[str, DiarizationError] = {}
    rows = []
    for group, name, channels in calls:
        mono = channels.mean(axis=0).astype(np.float32)
        t0 = time.perf_counter()
        result = diarize(mono, vad, endpointer, opts)
        took = time.perf_counter() - t0
        hyp = [Turn(s.start / RATE, s.end / RATE, f"spk{s.speaker}") for s in result.spans]
        err = diarization_error(reference_turns(channels, vad, endpointer), hyp, args.collar)
        first_is_ch0 = err.mapping.get("spk0") == "ch0" if channels.shape[0] == 2 else None
        totals[group] = totals[group] + err if group in totals else err
        row = {"group": group, "call": name, "audio_s": mono.size / RATE, "speakers_found": result.speakers,
               "der": err.der, "missed": err.missed_s / err.scored_s,
               "false_alarm": err.false_alarm_s / err.scored_s, "confusion": err.confusion_s / err.scored_s,
               "first_is_ch0": first_is_ch0, "rtf": took / (mono.size / RATE)}
        rows.append(row)
        print(f"{group:10} {name:24} {row['audio_s']:7.1f} {result.speakers:5d} "
              f"{100 * err.der:6.1f} {100 * row['missed']:6.1f} {100 * row['false_alarm']:5.1f} "
              f"{100 * row['confusion']:6.1f} {str(first_is_ch0):>9} {row['rtf']:6.3f}", flush=True)
    two_voice = [g for g in totals if g != "one voice"]
    totals["all two-voice calls"] = sum((totals[g] for g in two_voice[1:]), totals[two_voice[0]])
    print("\npooled (total error time / total reference speech):")
    for group, err in totals.items():
        print(f"  {group:22} DER {100 * err.der:5.1f} %  (missed {100 * err.missed_s / err.scored_s:4.1f}, false alarm "
              f"{100 * err.false_alarm_s / err.scored_s:4.1f}, confusion {100 * err.confusion_s / err.scored_s:4.1f}; "
              f"{err.scored_s:.1f} s scored)")
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    if args.json:
        pooled = {g: {"der": e.der, "missed_s": e.missed_s, "false_alarm_s": e.false_alarm_s, "confusion_s": e.confusion_s,
                      "scored_s": e.scored_s} for g, e in totals.items()}
        args.json.write_text(json.dumps({"options": dataclasses.asdict(opts), "collar": args.collar, "calls": rows,
                                         "pooled": pooled}, indent=2))


if __name__ == "__main__":
    main()
