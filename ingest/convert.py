"""Decode any audio ffmpeg reads to 16 kHz float32 PCM, one array per channel.

Two decoders behind one function: PyAV (FFmpeg's libraries in-process, the default: no
process start-up per file) and the ffmpeg CLI through ffmpeg-python (as the design names
it). `bench/` measures both.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from callsense.ingest.errors import BadInput

TARGET_RATE = 16000


@dataclass
class DecodedAudio:
    channels: np.ndarray  # (n_channels, n_samples) float32 in [-1, 1] at 16 kHz
    source_rate: int
    codec: str

    @property
    def duration_s(self) -> float:
        return self.channels.shape[1] / TARGET_RATE


def decode_audio(data: bytes, decoder: str = "pyav") -> DecodedAudio:
    if not data:
        raise BadInput("empty file")
    if decoder == "ffmpeg":
        return _decode_ffmpeg_cli(data)
    return _decode_pyav(data)


_SAMPLE_TYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}


def _frame_arrays(frame, n_ch: int) -> list[np.ndarray]:
    """A decoded frame's samples per channel, as views on FFmpeg's buffers. Cheaper than
    `to_ndarray()` + a resampler call per frame, which cost more than the decoding."""
    dtype = _SAMPLE_TYPES[frame.format.name.rstrip("p")]
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


def resample(x: np.ndarray, rate: int) -> np.ndarray:
    """(channels, samples) float32 at `rate` -> 16 kHz, with soxr (one call for the file)."""
    if rate == TARGET_RATE:
        return x
    import soxr

    return np.ascontiguousarray(soxr.resample(x.T, rate, TARGET_RATE, quality="HQ").T.astype(np.float32, copy=False))


def _decode_pyav(data: bytes) -> DecodedAudio:
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.InvalidDataError, ValueError):
        raise BadInput("not an audio file (FFmpeg cannot read it)") from None
    except av.error.FFmpegError as e:
        raise BadInput(f"cannot open audio: {e}") from None
    with container:
        if not container.streams.audio:
            raise BadInput("the file has no audio stream")
        stream = container.streams.audio[0]
        n_ch = stream.codec_context.channels or 1
        codec = stream.codec_context.name
        rate = stream.codec_context.sample_rate or 0
        per_channel: list[list[np.ndarray]] = [[] for _ in range(n_ch)]
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate or rate
                for c, arr in enumerate(_frame_arrays(frame, n_ch)):
                    per_channel[c].append(arr)
        except av.error.FFmpegError as e:
            if not per_channel[0]:
                raise BadInput(f"audio is corrupt: {e}") from None
            # A truncated tail still leaves usable audio; keep what decoded.
    if not per_channel[0] or not rate:
        raise BadInput("the audio stream holds no samples")
    pcm = _to_float(np.stack([np.concatenate(parts) for parts in per_channel]))
    return DecodedAudio(channels=resample(pcm, rate), source_rate=rate, codec=codec)


def _decode_ffmpeg_cli(data: bytes) -> DecodedAudio:
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
             "stream=channels,sample_rate,codec_name", "-of", "json", tmp.name],
            capture_output=True,
        )
        streams = json.loads(probe.stdout or b"{}").get("streams") or []
        if probe.returncode != 0 or not streams:
            raise BadInput("not an audio file (ffprobe finds no audio stream)")
        info = streams[0]
        n_ch = int(info.get("channels") or 1)
        try:
            out, _ = (
                ffmpeg.input(tmp.name)
                .output("pipe:", format="f32le", acodec="pcm_f32le", ar=TARGET_RATE, ac=n_ch)
                .run(capture_stdout=True, capture_stderr=True, quiet=True)
            )
        except ffmpeg.Error as e:
            tail = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            raise BadInput(f"ffmpeg could not decode the audio: {' '.join(tail)}") from None
    pcm = np.frombuffer(out, dtype=np.float32)
    if pcm.size == 0:
        raise BadInput("the audio stream holds no samples")
    pcm = pcm[: pcm.size - pcm.size % n_ch].reshape(-1, n_ch).T
    return DecodedAudio(np.ascontiguousarray(pcm), int(info.get("sample_rate") or 0), info.get("codec_name", "?"))


def collapse_dual_mono(channels: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """A stereo recording of one voice (both channels alike) is one speaker, not a call."""
    if channels.shape[0] != 2:
        return channels
    a, b = channels
    if a.std() < 1e-6 or b.std() < 1e-6:
        return channels
    corr = float(np.corrcoef(a, b)[0, 1])
    return channels.mean(axis=0, keepdims=True) if corr >= threshold else channels


# --- raw PCM as live calls send it -------------------------------------------------------

def _g711_tables() -> tuple[np.ndarray, np.ndarray]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    mulaw = np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    mag = (a & 0x0F) << 4
    mag = np.where(seg == 0, mag + 8, np.where(seg == 1, mag + 0x108, (mag + 0x108) << (seg - 1)))
    alaw = np.where(a & 0x80, mag, -mag).astype(np.int16)
    return mulaw, alaw


_MULAW, _ALAW = _g711_tables()


def pcm_to_int16(pcm: bytes, encoding: str) -> np.ndarray:
    raw = np.frombuffer(pcm, dtype=np.uint8)
    if encoding == "mulaw":
        return _MULAW[raw]
    if encoding == "alaw":
        return _ALAW[raw]
    if encoding == "s16le":
        return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    raise BadInput(f"unsupported live encoding {encoding!r} (use s16le, mulaw or alaw)")


class StreamResampler:
    """Turns a live channel's chunks at any rate into 16 kHz float32, keeping filter state
    across chunks so chunk edges leave no clicks."""

    def __init__(self, source_rate: int):
        import soxr

        self._stream = None if source_rate == TARGET_RATE else soxr.ResampleStream(
            source_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")

    def push(self, samples_i16: np.ndarray) -> np.ndarray:
        x = samples_i16.astype(np.float32) / 32768.0
        return x if self._stream is None else self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)


def float_to_s16le(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def s16le_to_float(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<i2").astype(np.float32) / 32768.0
