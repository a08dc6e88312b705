"""Decode any audio ffmpeg reads to 16 kHz float32 PCM, one array per channel.

Two decoders behind one function: PyAV (FFmpeg's libraries in-process, the default: no
process start-up per file) and the ffmpeg CLI through ffmpeg-python (as the design names
it). `bench/` measures both.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from callsense.audio.resample import TARGET_RATE, resample
from callsense.core.errors import BadInput


@dataclass(frozen=True)
class AudioLimits:
    """What a decoder accepts: checked on the stream's header before decoding, and the
    decoded samples are capped at `max_seconds` (a lying header cannot exhaust memory)."""

    max_seconds: float = 14_400.0
    max_channels: int = 8
    min_rate: int = 4000
    max_rate: int = 192_000

    @classmethod
    def from_settings(cls, settings) -> "AudioLimits":
        return cls(max_seconds=settings.pipeline.max_call_seconds, max_channels=settings.pipeline.max_channels,
                   min_rate=settings.pipeline.min_sample_rate, max_rate=settings.pipeline.max_sample_rate)

    def check(self, rate: int, channels: int, duration_s: float | None) -> None:
        if channels < 1 or channels > self.max_channels:
            raise BadInput(f"{channels} audio channels (accepted: 1..{self.max_channels})")
        if rate < self.min_rate or rate > self.max_rate:
            raise BadInput(f"sample rate {rate} Hz (accepted: {self.min_rate}..{self.max_rate} Hz)")
        if duration_s is not None and duration_s > self.max_seconds:
            raise BadInput(f"the audio lasts {duration_s:.0f} s, longer than the limit of {self.max_seconds:.0f} s "
                           "(CALLSENSE_MAX_CALL_SECONDS)")

    def max_samples(self, rate: int) -> int:
        """Samples per channel a decode may produce at `rate` before it is refused."""
        return int(self.max_seconds * rate) + rate  # one second of slack for rounding


DEFAULT_LIMITS = AudioLimits()


@dataclass
class DecodedAudio:
    channels: np.ndarray  # (n_channels, n_samples) float32 in [-1, 1] at 16 kHz
    source_rate: int
    codec: str

    @property
    def duration_s(self) -> float:
        return self.channels.shape[1] / TARGET_RATE


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding it."""

    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None  # declared by the container or estimated from the bitrate; None if unknown


def decode_audio(data: bytes, decoder: str = "pyav", limits: AudioLimits | None = None) -> DecodedAudio:
    if not data:
        raise BadInput("empty file")
    limits = limits or DEFAULT_LIMITS
    if decoder == "ffmpeg":
        return _decode_ffmpeg_cli(data, limits)
    return _decode_pyav(data, limits)


def probe_audio(data: bytes, limits: AudioLimits | None = None) -> AudioInfo:
    """Container, codec, rate, channels and duration from the header (PyAV; no decoding),
    checked against `limits`. Raises BadInput for anything FFmpeg cannot open or the limits refuse."""
    if not data:
        raise BadInput("empty file")
    limits = limits or DEFAULT_LIMITS
    container = _open_pyav(data)
    with container:
        info = _stream_info(container)
    limits.check(info.sample_rate, info.channels, info.duration_s)
    return info


_SAMPLE_TYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}


def _frame_arrays(frame, n_ch: int) -> list[np.ndarray]:
    """A decoded frame's samples per channel, as views on FFmpeg's buffers. Cheaper than
    `to_ndarray()` + a resampler call per frame, which cost more than the decoding."""
    dtype = _SAMPLE_TYPES.get(frame.format.name.rstrip("p"))
    if dtype is None:
        raise BadInput(f"unsupported sample format {frame.format.name}")
    if frame.format.is_planar:
        return [np.frombuffer(p, dtype, count=frame.samples) for p in frame.planes[:n_ch]]
    packed = np.frombuffer(frame.planes[0], dtype, count=frame.samples * n_ch)
    return list(packed.reshape(-1, n_ch).T)


def _to_float(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return (x.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    return x.astype(np.float32, copy=False)


def _open_pyav(data: bytes):
    import av

    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.error.InvalidDataError, ValueError):
        raise BadInput("not an audio file (FFmpeg cannot read it)") from None
    except av.error.FFmpegError as e:
        raise BadInput(f"cannot open audio: {e}") from None
    except Exception as e:  # a lying header (bits 0, unknown format tag) breaks PyAV's stream set-up
        raise BadInput("cannot open audio: the header is invalid (unknown format tag, zero bits per sample, ...)") from None


def _stream_info(container) -> AudioInfo:
    if not container.streams.audio:
        raise BadInput("the file has no audio stream")
    stream = container.streams.audio[0]
    try:
        ctx = stream.codec_context
        codec = ctx.name
        if ctx.codec is None or ctx.format is None:
            raise ValueError("no codec")
        rate = int(ctx.sample_rate or 0)
        n_ch = int(ctx.channels or 0)
    except Exception:
        raise BadInput("unsupported audio stream: the header names no codec FFmpeg can decode") from None
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    fmt = getattr(container.format, "name", "?") or "?"
    return AudioInfo(container=fmt, codec=codec or "?", sample_rate=rate, channels=n_ch, duration_s=duration)


def _decode_pyav(data: bytes, limits: AudioLimits) -> DecodedAudio:
    pcm, rate, codec = decode_native(data, limits)
    return DecodedAudio(channels=resample(pcm, rate, TARGET_RATE), source_rate=rate, codec=codec)


def decode_native(data: bytes, limits: AudioLimits | None = None) -> tuple[np.ndarray, int, str]:
    """Decode with PyAV at the file's own rate: ((n_channels, n_samples) float32, rate, codec)."""
    import av

    limits = limits or DEFAULT_LIMITS
    container = _open_pyav(data)
    with container:
        info = _stream_info(container)
        limits.check(info.sample_rate, info.channels, info.duration_s)
        stream = container.streams.audio[0]
        n_ch, rate, codec = info.channels, info.sample_rate, info.codec
        cap = limits.max_samples(rate)
        got = 0
        per_channel: list[list[np.ndarray]] = [[] for _ in range(n_ch)]
        try:
            for frame in container.decode(stream):
                if frame.sample_rate and frame.sample_rate != rate:
                    limits.check(frame.sample_rate, n_ch, None)
                    rate = frame.sample_rate
                    cap = limits.max_samples(rate)
                got += frame.samples
                if got > cap:
                    raise BadInput(f"the audio is longer than the limit of {limits.max_seconds:.0f} s "
                                   "(CALLSENSE_MAX_CALL_SECONDS); decoding stopped")
                for c, arr in enumerate(_frame_arrays(frame, n_ch)):
                    per_channel[c].append(arr)
        except av.error.FFmpegError as e:
            if not per_channel[0]:
                raise BadInput(f"audio is corrupt: {e}") from None
            # A truncated tail still leaves usable audio; keep what decoded.
    if not per_channel[0] or not rate:
        raise BadInput("the audio stream holds no samples")
    return _to_float(np.stack([np.concatenate(parts) for parts in per_channel])), rate, codec


def _decode_ffmpeg_cli(data: bytes, limits: AudioLimits) -> DecodedAudio:
    import json
    import subprocess
    import tempfile

    import ffmpeg

    # A file, not a pipe: MP4/M4A keep their index at the end and need seeking.
    with tempfile.NamedTemporaryFile(suffix=".audio") as tmp:
        tmp.write(data)
        tmp.flush()
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=channels,sample_rate,codec_name,duration", "-show_entries", "format=duration",
             "-of", "json", tmp.name],
            capture_output=True,
        )
        try:
            probed = json.loads(probe.stdout or b"{}")
        except ValueError:
            probed = {}
        streams = probed.get("streams") or []
        if probe.returncode != 0 or not streams:
            raise BadInput("not an audio file (ffprobe finds no audio stream)")
        info = streams[0]
        n_ch = _int(info.get("channels"))
        duration = _float(info.get("duration")) or _float((probed.get("format") or {}).get("duration"))
        limits.check(_int(info.get("sample_rate")), n_ch, duration)
        try:
            # -t bounds the output whatever the header says; a longer result is refused below.
            out, _ = (
                ffmpeg.input(tmp.name)
                .output("pipe:", format="f32le", acodec="pcm_f32le", ar=TARGET_RATE, ac=n_ch, t=limits.max_seconds + 1)
                .run(capture_stdout=True, capture_stderr=True, quiet=True)
            )
        except ffmpeg.Error as e:
            tail = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            raise BadInput(f"ffmpeg could not decode the audio: {' '.join(tail)}") from None
    pcm = np.frombuffer(out, dtype=np.float32)
    if pcm.size == 0:
        raise BadInput("the audio stream holds no samples")
    if pcm.size // n_ch > limits.max_samples(TARGET_RATE):
        raise BadInput(f"the audio is longer than the limit of {limits.max_seconds:.0f} s (CALLSENSE_MAX_CALL_SECONDS)")
    pcm = pcm[: pcm.size - pcm.size % n_ch].reshape(-1, n_ch).T
    return DecodedAudio(np.ascontiguousarray(pcm), int(info.get("sample_rate") or 0), info.get("codec_name", "?"))


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def collapse_dual_mono(channels: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """A stereo recording of one voice (both channels alike) is one speaker, not a call."""
    if channels.shape[0] != 2:
        return channels
    a, b = channels
    if a.std() < 1e-6 or b.std() < 1e-6:
        return channels
    corr = float(np.corrcoef(a, b)[0, 1])
    return channels.mean(axis=0, keepdims=True) if corr >= threshold else channels
