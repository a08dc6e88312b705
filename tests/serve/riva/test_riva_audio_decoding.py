"""riva-serve's audio decoding without a server: WAV headers split across stream chunks,
raw multi-channel PCM, G.711 both ways, containers streamed in pieces, refusals."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np
import pytest

from callsense.serve.riva.audio import (
    ALAW, ENCODING_UNSPECIFIED, FLAC, LINEAR_PCM, MULAW, OGGOPUS, StreamingAudioDecoder, UnsupportedAudio,
    decode_request_audio,
)
from callsense.audio.encode import encode_ogg_opus
from callsense.audio.g711 import encode_alaw, encode_mulaw
from callsense.audio.pcm import float_to_int16
from callsense.audio.resample import resample
from callsense.audio.g711 import pcm_to_int16


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(float_to_int16(samples).tobytes())
    return buf.getvalue()


def stream(decoder: StreamingAudioDecoder, data: bytes, size: int) -> np.ndarray:
    parts = [decoder.push(data[i:i + size]) for i in range(0, len(data), size)] + [decoder.finish()]
    return np.concatenate(parts, axis=1)


def test_g711_encoders_invert_the_decoder_tables():
    codes = bytes(range(256))
    for name, encode in (("mulaw", encode_mulaw), ("alaw", encode_alaw)):
        decoded = pcm_to_int16(codes, name)
        again = pcm_to_int16(encode(decoded), name)
        assert np.array_equal(again, decoded), name


@pytest.mark.parametrize("chunk", [7, 44, 1000])
def test_wav_header_split_across_chunks(chunk):
    audio = tone(0.5, 8000)
    out = stream(StreamingAudioDecoder(ENCODING_UNSPECIFIED), wav(audio, 8000), chunk)
    assert out.shape[0] == 1 and out.shape[1] == pytest.approx(8000, abs=40)  # 0.5 s at 16 kHz
    reference = decode_request_audio(wav(audio, 8000), LINEAR_PCM)
    n = min(out.shape[1], reference.shape[1])
    assert np.abs(out[0, 200:n - 200] - reference[0, 200:n - 200]).max() < 0.02


def test_raw_stereo_pcm_with_channel_count():
    left, right = tone(0.25, 16000, 300), tone(0.25, 16000, 900) * 0.5
    interleaved = float_to_int16(np.stack([left, right], axis=1).reshape(-1)).tobytes()
    out = decode_request_audio(interleaved, LINEAR_PCM, 16000, 2)
    assert out.shape == (2, 4000)
    assert np.abs(out[0] - left).max() < 1e-3 and np.abs(out[1] - right).max() < 1e-3
    streamed = stream(StreamingAudioDecoder(LINEAR_PCM, 16000, 2), interleaved, 333)
    assert np.array_equal(streamed, out)


@pytest.mark.parametrize("encoding,encode", [(MULAW, encode_mulaw), (ALAW, encode_alaw)])
def test_g711_telephony_defaults_to_8k(encoding, encode):
    audio = tone(0.5, 8000)
    data = encode(float_to_int16(audio))
    out = decode_request_audio(data, encoding)  # no rate given: 8 kHz, as telephony sends
    assert out.shape[1] == pytest.approx(8000, abs=40)
    assert np.abs(out).max() == pytest.approx(0.4, abs=0.02)
    assert stream(StreamingAudioDecoder(encoding), data, 160).shape[1] == pytest.approx(8000, abs=40)


@pytest.mark.parametrize("encoding", [OGGOPUS, ENCODING_UNSPECIFIED])
def test_ogg_opus_streamed_in_pieces_equals_whole(encoding):
    audio = tone(1.5, 16000, 500)
    data = encode_ogg_opus(audio, 16000)
    whole = decode_request_audio(data, encoding)
    pieces = stream(StreamingAudioDecoder(encoding), data, 500)
    assert pieces.shape == whole.shape
    assert np.abs(pieces - whole).max() < 1e-4


def test_float_wav_and_refusals():
    audio = tone(0.2, 16000)
    buf = io.BytesIO()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = audio.astype("<f4").tobytes()
    buf.write(b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(body)) + b"WAVE")
    buf.write(b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(body)) + body)
    out = stream(StreamingAudioDecoder(LINEAR_PCM), buf.getvalue(), 100)
    assert np.abs(out[0] - audio).max() < 1e-6
    pcm24 = b"RIFF" + struct.pack("<I", 100) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + struct.pack("<HHIIHH", 1, 1, 16000, 48000, 3, 24)
    with pytest.raises(UnsupportedAudio, match="format tag 1, 24 bits"):
        StreamingAudioDecoder(LINEAR_PCM).push(pcm24 + b"data" + struct.pack("<I", 6) + b"\x00" * 6)
    with pytest.raises(UnsupportedAudio, match="must be a FLAC stream"):
        decode_request_audio(b"\x00\x01" * 100, FLAC)
    with pytest.raises(UnsupportedAudio, match="unsupported audio encoding encoding #9"):
        StreamingAudioDecoder(9)
    with pytest.raises(UnsupportedAudio, match="ended inside its WAV header"):
        _finish(StreamingAudioDecoder(LINEAR_PCM), b"RIFF\x00\x00\x00\x00WAVEfmt ")


def _finish(decoder: StreamingAudioDecoder, data: bytes) -> np.ndarray:
    decoder.push(data)
    return decoder.finish()


def test_resample_keeps_duration_and_pitch():
    audio = tone(1.0, 44100, 1000)
    out = resample(audio, 44100, 16000)
    assert out.size == pytest.approx(16000, abs=20)
    spectrum = np.abs(np.fft.rfft(out[:16000]))
    assert abs(int(spectrum.argmax()) - 1000) <= 2  # 1 Hz bins
