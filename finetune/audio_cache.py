"""Decoded audio, cached by content hash: a clip is decoded (and resampled, and cut) once,
then every later job, epoch or evaluation reads 16 kHz mono PCM straight from the cache.

The key is the sha256 of the source file's bytes plus what was taken from it (channel,
offset, duration), so a renamed file still hits and a changed file never does. Entries are
16-bit PCM WAV files: NeMo manifests can point at them directly.
"""

from __future__ import annotations

import hashlib
import os
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callsense.audio.decode import decode_audio
from callsense.audio.resample import TARGET_RATE

_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) within the process."""
    st = os.stat(path)
    memo_key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASH_MEMO[memo_key] = h.hexdigest()
    return _HASH_MEMO[memo_key]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    decode_s: float = 0.0  # decoding + resampling + writing, on misses
    load_s: float = 0.0  # reading cached PCM, on hits
    audio_s: float = 0.0  # seconds of audio served

    def line(self) -> str:
        return (f"{self.hits + self.misses} clips ({self.audio_s:.1f} s of audio): {self.misses} decoded in {self.decode_s:.3f} s, "
                f"{self.hits} from the cache in {self.load_s:.3f} s")

    def as_dict(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "decode_s": round(self.decode_s, 4),
                "load_s": round(self.load_s, 4), "audio_s": round(self.audio_s, 2)}


@dataclass
class AudioCache:
    root: Path
    decoder: str = "pyav"
    stats: CacheStats = field(default_factory=CacheStats)

    def key(self, path: Path, channel: int | None = None, offset: float = 0.0, duration: float | None = None) -> str:
        spec = f"{file_sha256(path)}|ch={channel}|off={offset:.3f}|dur={'' if duration is None else f'{duration:.3f}'}|{TARGET_RATE}"
        return hashlib.sha256(spec.encode()).hexdigest()

    def path_for(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.wav"

    def wav(self, path: Path, channel: int | None = None, offset: float = 0.0, duration: float | None = None) -> Path:
        """The cached 16 kHz mono WAV of (a channel of) (a span of) a file; decoded on a miss."""
        key = self.key(path, channel, offset, duration)
        target = self.path_for(key)
        t0 = time.perf_counter()
        if target.exists():
            with wave.open(str(target), "rb") as w:
                self.stats.audio_s += w.getnframes() / TARGET_RATE
            self.stats.hits += 1
            self.stats.load_s += time.perf_counter() - t0
            return target
        audio = self._decode(path, channel, offset, duration)
        self._write(target, audio)
        self.stats.misses += 1
        self.stats.audio_s += audio.size / TARGET_RATE
        self.stats.decode_s += time.perf_counter() - t0
        return target

    def audio(self, path: Path, channel: int | None = None, offset: float = 0.0, duration: float | None = None) -> np.ndarray:
        """float32 samples at 16 kHz (from the cache when there)."""
        key = self.key(path, channel, offset, duration)
        target = self.path_for(key)
        t0 = time.perf_counter()
        if target.exists():
            audio = read_wav(target)
            self.stats.hits += 1
            self.stats.load_s += time.perf_counter() - t0
        else:
            audio = self._decode(path, channel, offset, duration)
            self._write(target, audio)
            self.stats.misses += 1
            self.stats.decode_s += time.perf_counter() - t0
        self.stats.audio_s += audio.size / TARGET_RATE
        return audio

    def _decode(self, path: Path, channel: int | None, offset: float, duration: float | None) -> np.ndarray:
        decoded = decode_audio(Path(path).read_bytes(), self.decoder)
        chans = decoded.channels
        if channel is None:
            mono = chans.mean(axis=0) if chans.shape[0] > 1 else chans[0]
        else:
            if channel >= chans.shape[0]:
                raise ValueError(f"{path} has {chans.shape[0]} channel(s); channel {channel} asked")
            mono = chans[channel]
        start = int(round(offset * TARGET_RATE))
        end = mono.size if duration is None else start + int(round(duration * TARGET_RATE))
        return np.ascontiguousarray(mono[start:end], dtype=np.float32)

    @staticmethod
    def _write(target: Path, audio: np.ndarray) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(TARGET_RATE)
            w.writeframes(pcm.tobytes())
        tmp.replace(target)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
