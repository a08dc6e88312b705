"""A spoken evaluation set made by the project: MELD dialogues read aloud as two-channel calls.

    python -m callsense.finetune.spoken_set build --split dev [--out DIR] [--dialogues N] [--seed S]

Each MELD dialogue (rows of Dialogue_ID, Utterance_ID, Speaker, Utterance, Sentiment) becomes
one call: the dialogue's first speaker is the agent (channel 0), everybody else the customer
(channel 1). Every turn is spoken by espeak-ng (the project's embedded TTS engine) with a
voice and a speaking rate drawn per speaker from the seed, placed after the previous turn
with a short gap (0.25-0.6 s). Three variants of every call are written:

- ``clean/``: 16 kHz 16-bit PCM, two channels;
- ``noisy/``: the same plus white or pink noise at ~15 dB SNR (per channel, against the
  power of the speech it carries);
- ``telephony/``: 8 kHz G.711 mu-law, two channels (``callsense.audio.g711.encode_mulaw``).

Beside each ``<call>.wav`` lies ``<call>.turns.csv``: channel, role, speaker, start, end
(seconds, the spoken part of the turn, leading/trailing silence of the TTS trimmed), text,
sentiment (MELD's label), dialogue and utterance ids. (CSV, not JSON lines: `callsense
process FOLDER` takes ``.jsonl`` files for chats.) ``set.json`` records the split, the
source file's sha256, the seed and the voice and rate of every speaker.

The same split, seed and options give the same files (byte for byte, with the same
espeak-ng). Sets are written under the data dir (``<data dir>/spoken/<split>-s<seed>``) unless
``--out`` says otherwise: never into the repository. Build sets from `dev` to evaluate, from
`train` to train on; never evaluate on a set built from `train`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import struct
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SOURCE_DIR = Path("/work/shared/data/sentiment/meld")
RATE = 16000
TELEPHONY_RATE = 8000
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3", "en-gb+f2", "en-us+m3"]
WPM = [135, 150, 165, 180, 195]
GAP_S = (0.25, 0.6)
LEAD_S = 0.4
SNR_DB = 15.0
VARIANTS = ("clean", "noisy", "telephony")
TURN_FIELDS = ["channel", "role", "speaker", "start", "end", "text", "sentiment", "dialogue_id", "utterance_id"]
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass
class Turn:
    channel: int
    role: str
    speaker: str
    start: float
    end: float
    text: str
    sentiment: str
    dialogue_id: str
    utterance_id: str

    def row(self) -> dict:
        return {"channel": self.channel, "role": self.role, "speaker": self.speaker, "start": f"{self.start:.3f}",
                "end": f"{self.end:.3f}", "text": self.text, "sentiment": self.sentiment, "dialogue_id": self.dialogue_id,
                "utterance_id": self.utterance_id}


@dataclass
class Dialogue:
    id: str
    rows: list[dict] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        out: list[str] = []
        for r in self.rows:
            if r["Speaker"] not in out:
                out.append(r["Speaker"])
        return out


def read_dialogues(path: Path) -> list[Dialogue]:
    """MELD CSV -> dialogues in Dialogue_ID order, utterances in Utterance_ID order."""
    by_id: dict[str, Dialogue] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            text = (r.get("Utterance") or "").strip()
            label = (r.get("Sentiment") or "").strip().lower()
            if not text or label not in SENTIMENTS:
                continue
            by_id.setdefault(r["Dialogue_ID"], Dialogue(r["Dialogue_ID"])).rows.append(r)
    for d in by_id.values():
        d.rows.sort(key=lambda r: int(r["Utterance_ID"]))
    return sorted(by_id.values(), key=lambda d: int(d.id))


def read_turns(path: Path) -> list[Turn]:
    """A ``.turns.csv`` file (as written here, or by hand) -> turns."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [Turn(int(r["channel"]), r.get("role", ""), r.get("speaker", ""), float(r["start"]), float(r["end"]), r["text"],
                     (r.get("sentiment") or "").strip().lower(), r.get("dialogue_id", ""), r.get("utterance_id", ""))
                for r in csv.DictReader(fh)]


def turns_path(wav: Path) -> Path:
    return wav.with_name(wav.name[: -len(wav.suffix)] + ".turns.csv")


def _normalise(text: str) -> str:
    """MELD's typographic characters -> ASCII, so espeak-ng reads them as it reads ASCII."""
    for a, b in {"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2014": " - ",
                 "\u2013": " - ", "\u00a0": " ", "\u0092": "'", "\u0091": "'", "\u0085": "...", "\u0097": " - "}.items():
        text = text.replace(a, b)
    return text


def _trim(x: np.ndarray, rate: int, floor_db: float = -45.0) -> tuple[int, int]:
    """First and last sample of the audible part (20 ms frames above `floor_db` dBFS)."""
    frame = rate // 50
    n = x.size // frame
    if n == 0:
        return 0, x.size
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms) > floor_db)[0]
    if loud.size == 0:
        return 0, x.size
    return int(loud[0] * frame), int(min(x.size, (loud[-1] + 1) * frame))


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    # Pink (1/f power): shape white noise's spectrum by 1/sqrt(f).
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def add_noise(audio: np.ndarray, turns: list[Turn], rng: np.random.Generator, snr_db: float = SNR_DB) -> tuple[np.ndarray, str]:
    """(channels, samples) -> the same with white or pink noise at `snr_db` per channel, the
    speech power measured over the channel's turns."""
    kind = "white" if rng.random() < 0.5 else "pink"
    out = audio.copy()
    for ch in range(audio.shape[0]):
        spans = [(int(t.start * RATE), int(t.end * RATE)) for t in turns if t.channel == ch]
        speech = np.concatenate([audio[ch, a:b] for a, b in spans]) if spans else audio[ch]
        power = float(np.mean(speech.astype(np.float64) ** 2)) if speech.size else 0.0
        if power <= 0:
            power = 1e-6
        noise = _noise(kind, audio.shape[1], rng)
        noise *= np.sqrt(power / 10 ** (snr_db / 10) / np.mean(noise ** 2))
        out[ch] = audio[ch] + noise.astype(np.float32)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out, kind


def _int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767).round().astype("<i2")


def write_pcm_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(audio.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(_int16(audio).T.copy().tobytes())


def write_mulaw_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """(channels, samples) float -> a G.711 mu-law WAV (format tag 7, with its fact chunk)."""
    from callsense.audio.g711 import encode_mulaw

    channels, frames = audio.shape
    data = encode_mulaw(_int16(audio).T.reshape(-1))
    fmt = struct.pack("<HHIIHHH", 7, channels, rate, rate * channels, channels, 8, 0)
    fact = struct.pack("<I", frames)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


class Speaker:
    def __init__(self, tts, voice: str, wpm: int):
        self.tts, self.voice, self.wpm = tts, voice, wpm

    def say(self, text: str) -> np.ndarray:
        self.tts.words_per_minute = self.wpm
        return self.tts.synthesize(_normalise(text), voice=self.voice, sample_rate=RATE).samples


def build_call(dialogue: Dialogue, tts, rng: np.random.Generator, max_turns: int | None = None) -> tuple[np.ndarray, list[Turn], dict]:
    rows = dialogue.rows[:max_turns] if max_turns else dialogue.rows
    names = dialogue.speakers
    voices = rng.permutation(VOICES)
    cast = {}
    for k, name in enumerate(names):
        cast[name] = {"voice": str(voices[k % len(voices)]), "wpm": int(rng.choice(WPM)),
                      "channel": 0 if name == names[0] else 1}
    pieces, turns, cursor = [], [], LEAD_S
    for r in rows:
        who = cast[r["Speaker"]]
        x = Speaker(tts, who["voice"], who["wpm"]).say(r["Utterance"].strip())
        a, b = _trim(x, RATE)
        x = x[a:b]
        start = cursor
        pieces.append((who["channel"], int(round(start * RATE)), x))
        end = start + x.size / RATE
        turns.append(Turn(who["channel"], "agent" if who["channel"] == 0 else "customer", r["Speaker"], round(start, 3),
                          round(end, 3), r["Utterance"].strip(), r["Sentiment"].strip().lower(), dialogue.id, r["Utterance_ID"]))
        cursor = end + float(rng.uniform(*GAP_S))
    total = int(round((cursor + LEAD_S) * RATE))
    audio = np.zeros((2, total), np.float32)
    for ch, at, x in pieces:
        audio[ch, at:at + x.size] += x
    return audio, turns, cast


def _write_turns(path: Path, turns: list[Turn]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, TURN_FIELDS)
        w.writeheader()
        for t in turns:
            w.writerow(t.row())


def default_out(split: str, seed: int) -> Path:
    from callsense.core.settings import Settings

    return Path(Settings().data_dir) / "spoken" / f"{split}-s{seed}"


def build(split: str, out: Path, *, dialogues: int | None = None, seed: int = 13, max_turns: int | None = None,
          source_dir: Path = SOURCE_DIR, min_speakers: int = 2, progress=None) -> dict:
    """Write the set; returns what `set.json` records. `dialogues` None: every dialogue with at
    least `min_speakers` speakers; else that many, drawn with the seed."""
    from callsense.asr.tts.base import create_tts_engine
    from callsense.core.settings import Settings

    if split not in ("dev", "train"):
        raise ValueError(f"split must be dev or train (the test split is kept apart), not '{split}'")
    source = Path(source_dir) / f"{split}.csv"
    all_dialogues = [d for d in read_dialogues(source) if len(d.speakers) >= min_speakers]
    rng = np.random.default_rng(seed)
    chosen = all_dialogues
    if dialogues is not None and dialogues < len(all_dialogues):
        idx = sorted(rng.choice(len(all_dialogues), size=dialogues, replace=False).tolist())
        chosen = [all_dialogues[i] for i in idx]
    tts = create_tts_engine(Settings(), "espeak")
    out = Path(out)
    for v in VARIANTS:
        (out / v).mkdir(parents=True, exist_ok=True)
    calls = []
    if progress:
        progress.start(f"speaking {len(chosen)} {split} dialogues", len(chosen))
    for d in chosen:
        crng = np.random.default_rng([seed, int(d.id)])  # per dialogue: a subset gives the same calls
        audio, turns, cast = build_call(d, tts, crng, max_turns)
        name = f"meld-{split}-dlg{int(d.id):04d}"
        noisy, noise_kind = add_noise(audio, turns, crng)
        from callsense.audio.resample import resample

        tel = resample(audio, RATE, TELEPHONY_RATE)
        for variant, writer in (("clean", lambda p: write_pcm_wav(p, audio, RATE)),
                                ("noisy", lambda p: write_pcm_wav(p, noisy, RATE)),
                                ("telephony", lambda p: write_mulaw_wav(p, tel, TELEPHONY_RATE))):
            wav = out / variant / f"{name}.wav"
            writer(wav)
            _write_turns(turns_path(wav), turns)
        calls.append({"call": name, "dialogue_id": d.id, "turns": len(turns), "duration_s": round(audio.shape[1] / RATE, 2),
                      "cast": cast, "noise": noise_kind,
                      "labels": {s: sum(t.sentiment == s for t in turns) for s in SENTIMENTS}})
        if progress:
            progress.advance()
    info = {"split": split, "source": str(source), "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "seed": seed, "dialogues": len(chosen), "max_turns": max_turns, "tts": tts.model_id,
            "variants": {"clean": f"{RATE} Hz PCM16, 2 channels", "noisy": f"clean + white/pink noise at {SNR_DB:g} dB SNR",
                         "telephony": f"{TELEPHONY_RATE} Hz G.711 mu-law, 2 channels"},
            "channels": {"0": "agent (the dialogue's first speaker)", "1": "customer (every other speaker)"},
            "turns": sum(c["turns"] for c in calls), "audio_s": round(sum(c["duration_s"] for c in calls), 1), "calls": calls}
    (out / "set.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    import typer
    from rich.console import Console

    app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Spoken evaluation sets: MELD dialogues read by espeak-ng as two-channel calls.")
    console = Console(stderr=True)

    @app.command("build")
    def build_cmd(split: str = typer.Option("dev", help="dev (to evaluate) or train (to train on)."),
                  out: Path = typer.Option(None, help="Folder (default: <data dir>/spoken/<split>-s<seed>)."),
                  dialogues: int = typer.Option(None, help="Only this many dialogues, drawn with the seed (default: all)."),
                  seed: int = typer.Option(13, help="Seeds the choice of dialogues, voices, rates, gaps and noise."),
                  max_turns: int = typer.Option(None, help="Only the first N turns of each dialogue.")):
        """Write clean/, noisy/ and telephony/ calls with a .turns.csv beside each, and set.json."""
        from callsense.finetune.cli import RichProgress, _progress

        target = out or default_out(split, seed)
        try:
            with _progress() as p:
                info = build(split, target, dialogues=dialogues, seed=seed, max_turns=max_turns, progress=RichProgress(p))
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            console.print(f"[bold red]error:[/] {str(e).splitlines()[0]}")
            raise typer.Exit(1)
        print(f"{info['dialogues']} calls, {info['turns']} turns, {info['audio_s']} s of audio per variant "
              f"({', '.join(VARIANTS)}) in {target}")

    @app.command("info")
    def info_cmd(folder: Path):
        """Print a set's set.json summary."""
        info = json.loads((folder / "set.json").read_text())
        print(json.dumps({k: v for k, v in info.items() if k != "calls"}, indent=2))

    try:
        app(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
