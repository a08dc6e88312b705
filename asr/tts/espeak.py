"""Embedded TTS: Debian's espeak-ng, run as a subprocess (no network, no model weights).

espeak-ng writes a 22,050 Hz 16-bit mono WAV to stdout; the text goes in on stdin, so
text that starts with '-' is never taken for an option.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from functools import cached_property

import numpy as np

from callsense.asr.tts.base import SynthesizedAudio, TtsEngine, TtsUnavailable, Voice, tts_engines
from callsense.core.settings import Settings

INSTALL_HINT = "apt-get install espeak-ng"


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise TtsUnavailable(f"the embedded TTS engine needs the espeak-ng program, which is not installed: {INSTALL_HINT}")
    return path


@tts_engines.register("espeak")
class EspeakEngine(TtsEngine):
    name = "espeak"

    def __init__(self, settings: Settings):
        self.binary = espeak_binary()
        self.voice = settings.asr.espeak_voice
        self.words_per_minute = settings.asr.espeak_words_per_minute
        if self.voice not in {v.name for v in self.voices()}:
            raise TtsUnavailable(f"espeak-ng has no voice '{self.voice}' (CALLSENSE_ESPEAK_VOICE); "
                                 f"English ones: {', '.join(v.name for v in self.voices() if v.language.startswith('en'))}")

    @cached_property
    def _version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.split()
        return out[3] if len(out) > 3 else "?"

    @property
    def model_id(self) -> str:
        return f"espeak-ng:{self._version}"

    @cached_property
    def _voices(self) -> list[Voice]:
        out = subprocess.run([self.binary, "--voices"], capture_output=True, text=True, check=False).stdout
        voices: dict[str, Voice] = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 4:
                lang, gender, file = parts[1], parts[2].split("/")[-1], parts[4] if len(parts) > 4 else ""
                if file.startswith("mb/"):
                    continue  # MBROLA voices need extra Debian packages
                voices.setdefault(lang, Voice(lang, lang, {"M": "male", "F": "female"}.get(gender, "")))
        return list(voices.values())

    def voices(self) -> list[Voice]:
        return self._voices

    def synthesize(self, text: str, *, voice: str | None = None, sample_rate: int | None = None) -> SynthesizedAudio:
        voice = voice or self.voice
        if not text.strip():
            return SynthesizedAudio(np.zeros(0, np.float32), sample_rate or 22050, text)
        proc = subprocess.run(
            [self.binary, "--stdout", "--stdin", "-v", voice, "-s", str(self.words_per_minute)],
            input=text.encode(), capture_output=True, timeout=60,
        )
        if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
            reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise TtsUnavailable(f"espeak-ng failed for voice '{voice}': {reason[0]}")
        with wave.open(io.BytesIO(proc.stdout)) as w:
            rate = w.getframerate()
            # espeak-ng streams to stdout and leaves the WAV length fields unset: read to the end.
            pcm = proc.stdout[44:]
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0
        audio = SynthesizedAudio(samples, rate, text)
        return audio.resampled(sample_rate) if sample_rate and sample_rate != rate else audio
