"""Decoding real files of every supported container with both decoders."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from callsense.audio.decode import decode_audio
from callsense.audio.g711 import pcm_to_int16
from callsense.audio.resample import TARGET_RATE, StreamResampler
from callsense.core.errors import BadInput
from callsense.ingest.sources import encode_mulaw

STEREO = "stereo_diarization.wav"


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, shared_audio: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("enc")
    src = shared_audio / STEREO
    specs = {
        "mp3": ["-codec:a", "libmp3lame", "-b:a", "64k"],
        "flac": ["-codec:a", "flac"],
        "ogg": ["-codec:a", "libvorbis"],
        "m4a": ["-codec:a", "aac"],
        "wav": [],
        "ulaw.wav": ["-ar", "8000", "-codec:a", "pcm_mulaw"],
    }
    files = {}
    for ext, args in specs.items():
        path = out / f"call.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(path)], check=True)
        files[ext] = path
    return files


@pytest.mark.parametrize("ext", ["mp3", "flac", "ogg", "m4a", "wav", "ulaw.wav"])
@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
def test_every_container_decodes_to_two_16k_channels(encoded, ext, decoder):
    audio = decode_audio(encoded[ext].read_bytes(), decoder)
    assert audio.channels.shape[0] == 2
    assert audio.channels.dtype == np.float32
    assert abs(audio.duration_s - 5.0) < 0.15
    # The speakers stay apart: channel 0 is louder in its first half than channel 1.
    assert not np.allclose(audio.channels[0], audio.channels[1], atol=1e-3)


def test_decoders_agree(encoded):
    a = decode_audio(encoded["flac"].read_bytes(), "pyav").channels
    b = decode_audio(encoded["flac"].read_bytes(), "ffmpeg").channels
    n = min(a.shape[1], b.shape[1])
    assert np.corrcoef(a[0, :n], b[0, :n])[0, 1] > 0.99


@pytest.mark.parametrize("data,needle", [
    (b"", "empty"),
    (b"this is a text file, not audio\n" * 50, "not an audio file"),
    (bytes(range(256)) * 40, "not an audio file"),
])
@pytest.mark.parametrize("decoder", ["pyav", "ffmpeg"])
def test_bad_input_is_a_clear_error(data, needle, decoder):
    with pytest.raises(BadInput) as e:
        decode_audio(data, decoder)
    if decoder == "pyav" or needle == "empty":
        assert needle in str(e.value)


def test_truncated_mp3_keeps_what_decodes(encoded):
    data = encoded["mp3"].read_bytes()
    audio = decode_audio(data[: len(data) // 2])
    assert 1.5 < audio.duration_s < 3.5


def test_g711_tables_match_ffmpeg(tmp_path):
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(8000) * 6000).astype("<i2")
    for enc, fmt in (("mulaw", "mulaw"), ("alaw", "alaw")):
        raw = tmp_path / "x.raw"
        raw.write_bytes(pcm.tobytes())
        coded = subprocess.run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "8000", "-ac", "1", "-i", str(raw),
                                "-f", fmt, "-"], check=True, capture_output=True).stdout
        ours = pcm_to_int16(coded, enc)
        theirs = subprocess.run(["ffmpeg", "-v", "error", "-f", fmt, "-ar", "8000", "-ac", "1", "-i", "-",
                                 "-f", "s16le", "-"], input=coded, check=True, capture_output=True).stdout
        assert np.array_equal(ours, np.frombuffer(theirs, "<i2"))
    # Our encoder (used to simulate telephony) round-trips within mu-law's quantization error.
    back = pcm_to_int16(encode_mulaw(pcm), "mulaw").astype(float)
    assert np.abs(back - pcm).max() <= np.abs(pcm).max() / 16


def test_stream_resampler_matches_length():
    rs = StreamResampler(8000)
    x = (np.sin(np.arange(8000 * 2) / 5) * 8000).astype(np.int16)
    out = np.concatenate([rs.push(x[i:i + 800]) for i in range(0, x.size, 800)] + [rs.flush()])
    assert abs(out.size - 2 * TARGET_RATE) < 64
