"""Audio as Riva clients send it -> 16 kHz float32, one row per channel.

Riva's `RecognitionConfig.encoding` names LINEAR_PCM (16-bit little endian), FLAC, MULAW,
ALAW and OGGOPUS. NVIDIA's own scripts send whole WAV files (header included) and often
leave the encoding and rate unset, so a RIFF, fLaC or OggS header is recognised and its
own format wins. Anything else is refused with `UnsupportedAudio`, which the service
turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

import struct

import numpy as np

from callsense.audio.decode import decode_audio
from callsense.audio.g711 import pcm_to_int16
from callsense.audio.resample import TARGET_RATE, StreamResampler, resample
from callsense.core.errors import BadInput

# riva_audio.proto's AudioEncoding values (kept here so this module imports without grpc).
ENCODING_UNSPECIFIED, LINEAR_PCM, FLAC, MULAW, OGGOPUS, ALAW = 0, 1, 2, 3, 4, 20
ENCODING_NAMES = {0: "ENCODING_UNSPECIFIED", 1: "LINEAR_PCM", 2: "FLAC", 3: "MULAW", 4: "OGGOPUS", 20: "ALAW"}
SUPPORTED = "LINEAR_PCM (16-bit, any rate, WAV header optional), FLAC, MULAW, ALAW, OGGOPUS"
MIN_RATE, MAX_RATE = 4000, 192000

# WAV format tags handled inside a RIFF header.
_WAV_PCM, _WAV_FLOAT, _WAV_ALAW, _WAV_MULAW, _WAV_EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


class UnsupportedAudio(ValueError):
    """The request's audio cannot be decoded as described: INVALID_ARGUMENT with this message."""


def encoding_name(encoding: int) -> str:
    return ENCODING_NAMES.get(encoding, f"encoding #{encoding}")


def sniff_container(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    return None


def _check_encoding(encoding: int) -> None:
    if encoding not in ENCODING_NAMES:
        raise UnsupportedAudio(f"unsupported audio encoding {encoding_name(encoding)}; riva-serve accepts {SUPPORTED}")


def _check_rate(rate: int, what: str) -> int:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedAudio(f"sample rate {rate} Hz of the {what} audio is out of range ({MIN_RATE}-{MAX_RATE} Hz)")
    return rate


def _container_expected(encoding: int, container: str | None) -> bool:
    """Whether the bytes are a file (decoded by FFmpeg) rather than raw samples."""
    if encoding == FLAC:
        if container not in ("flac", "ogg"):
            raise UnsupportedAudio("FLAC audio must be a FLAC stream (starting with 'fLaC'); the data is not")
        return True
    if encoding == OGGOPUS:
        if container != "ogg":
            raise UnsupportedAudio("OGGOPUS audio must be an Ogg stream (starting with 'OggS'); the data is not")
        return True
    if encoding == ENCODING_UNSPECIFIED:
        return container is not None
    return container == "wav"  # LINEAR_PCM / MULAW / ALAW with a WAV header


def _raw_format(encoding: int) -> str:
    return {MULAW: "mulaw", ALAW: "alaw"}.get(encoding, "s16le")


def _default_rate(encoding: int) -> int:
    return 8000 if encoding in (MULAW, ALAW) else TARGET_RATE


def _to_16k(channels: np.ndarray, rate: int) -> np.ndarray:
    return resample(channels.astype(np.float32, copy=False), rate, TARGET_RATE)


def decode_request_audio(data: bytes, encoding: int, sample_rate: int = 0, channels: int = 0) -> np.ndarray:
    """A whole request's audio -> (channels, samples) float32 at 16 kHz."""
    _check_encoding(encoding)
    if not data:
        raise UnsupportedAudio("the request holds no audio")
    container = sniff_container(data)
    if _container_expected(encoding, container):
        try:
            return decode_audio(data).channels
        except BadInput as e:
            raise UnsupportedAudio(f"cannot decode the {encoding_name(encoding)} audio: {e}") from None
    n_ch = channels or 1
    rate = _check_rate(sample_rate or _default_rate(encoding), encoding_name(encoding))
    samples = pcm_to_int16(data, _raw_format(encoding)).astype(np.float32) / 32768.0
    samples = samples[: samples.size - samples.size % n_ch].reshape(-1, n_ch).T
    return _to_16k(samples, rate)


# --------------------------------------------------------------------------- streaming


def _parse_wav_header(buf: bytes) -> tuple[str, int, int, int] | None:
    """(sample format, rate, channels, offset of the samples), or None while incomplete."""
    pos, fmt = 12, None
    while pos + 8 <= len(buf):
        cid, size = buf[pos:pos + 4], struct.unpack("<I", buf[pos + 4:pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            if body + 16 > len(buf):
                return None
            tag, n_ch, rate, _, _, bits = struct.unpack("<HHIIHH", buf[body:body + 16])
            if tag == _WAV_EXTENSIBLE and size >= 40 and body + 26 <= len(buf):
                tag = struct.unpack("<H", buf[body + 24:body + 26])[0]
            kinds = {(_WAV_PCM, 16): "s16le", (_WAV_FLOAT, 32): "f32le", (_WAV_MULAW, 8): "mulaw", (_WAV_ALAW, 8): "alaw"}
            if (tag, bits) not in kinds:
                raise UnsupportedAudio(f"unsupported WAV sample format (format tag {tag}, {bits} bits); "
                                       "send 16-bit PCM, 32-bit float, mu-law or A-law")
            fmt = (kinds[(tag, bits)], rate, n_ch)
        elif cid == b"data":
            if fmt is None:
                raise UnsupportedAudio("the WAV header has no 'fmt ' chunk before its samples")
            return (*fmt, body)
        pos = body + size + (size & 1)
    if len(buf) > 1 << 16:
        raise UnsupportedAudio("no 'data' chunk in the first 64 KB of the WAV stream")
    return None


class StreamingAudioDecoder:
    """Audio chunks of one stream in, 16 kHz float32 (channels, samples) blocks out.

    Raw PCM and G.711 (with or without a WAV header) decode chunk by chunk. FLAC and Ogg
    Opus streams are decoded again from their start whenever enough new bytes arrived
    and only the new samples are passed on (FFmpeg needs the stream header; the clips of
    a call stream are short enough for this to stay cheap).
    """

    CONTAINER_REDECODE_BYTES = 8192

    def __init__(self, encoding: int, sample_rate: int = 0, channels: int = 0):
        _check_encoding(encoding)
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.channels = channels or 1
        self._mode: str | None = None  # "raw" or "container"
        self._buf = b""
        self._raw_format = _raw_format(encoding)
        self._resamplers: list[StreamResampler] = []
        self._emitted = 0  # container mode: 16 kHz samples already passed on
        self._decoded_at = 0  # container mode: buffer length at the last decode
        self.received_bytes = 0

    def _empty(self) -> np.ndarray:
        return np.zeros((self.channels, 0), np.float32)

    def push(self, data: bytes) -> np.ndarray:
        self.received_bytes += len(data)
        self._buf += data
        if self._mode is None and not self._start():
            return self._empty()
        if self._mode == "container":
            if len(self._buf) - self._decoded_at >= self.CONTAINER_REDECODE_BYTES:
                return self._decode_container(final=False)
            return self._empty()
        return self._decode_raw()

    def finish(self) -> np.ndarray:
        if self._mode is None:
            if not self._buf:
                return self._empty()
            if not self._start(final=True):
                raise UnsupportedAudio("the stream ended inside its WAV header")
        if self._mode == "container":
            return self._decode_container(final=True)
        out = self._decode_raw()
        tails = [r.flush() for r in self._resamplers]
        if tails and tails[0].size:
            n = min(t.size for t in tails)
            out = np.concatenate([out, np.stack([t[:n] for t in tails])], axis=1)
        return out

    def _start(self, final: bool = False) -> bool:
        """Decide the stream's format from its first bytes; False while more are needed."""
        if len(self._buf) < 12 and not final:
            return False
        container = sniff_container(self._buf)
        if _container_expected(self.encoding, container) and container != "wav":
            self._mode = "container"
            return True
        rate = self.sample_rate or _default_rate(self.encoding)
        if container == "wav":
            header = _parse_wav_header(self._buf)
            if header is None:
                return False
            self._raw_format, rate, self.channels, offset = header
            self._buf = self._buf[offset:]
        _check_rate(rate, encoding_name(self.encoding))
        self._resamplers = [StreamResampler(rate) for _ in range(self.channels)]
        self._mode = "raw"
        return True

    def _decode_raw(self) -> np.ndarray:
        width = {"s16le": 2, "f32le": 4}.get(self._raw_format, 1) * self.channels
        usable = len(self._buf) - len(self._buf) % width
        data, self._buf = self._buf[:usable], self._buf[usable:]
        if not data:
            return self._empty()
        if self._raw_format == "f32le":
            samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
        else:
            samples = pcm_to_int16(data, self._raw_format).astype(np.float32) / 32768.0
        rows = samples.reshape(-1, self.channels).T
        out = [r.push(row) for r, row in zip(self._resamplers, rows)]
        n = min(o.size for o in out)
        return np.stack([o[:n] for o in out])

    def _decode_container(self, final: bool) -> np.ndarray:
        self._decoded_at = len(self._buf)
        try:
            decoded = decode_audio(self._buf).channels
        except BadInput as e:
            if not final:
                return self._empty()  # the header may not be complete yet
            raise UnsupportedAudio(f"cannot decode the {encoding_name(self.encoding)} stream: {e}") from None
        self.channels = decoded.shape[0]
        # Hold back the last 20 ms until the end: a truncated stream's last frame may change.
        upto = decoded.shape[1] if final else max(decoded.shape[1] - TARGET_RATE // 50, self._emitted)
        out = decoded[:, self._emitted:upto]
        self._emitted = upto
        return out
