"""riva-serve's RivaSpeechRecognition through the real `riva.client` API, called the way
NVIDIA's scripts (transcribe_file_offline.py, transcribe_file.py) call it: whole WAV/FLAC
files with their headers and no encoding set, `AudioChunkFileIterator` for streaming,
`print_offline` / `print_streaming` for output."""

from __future__ import annotations

import io
import threading

import grpc
import jiwer
import numpy as np
import pytest

riva_client = pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
import riva.client.proto.riva_asr_pb2 as rasr  # noqa: E402

from callsense.audio.encode import encode_ogg_opus
from callsense.audio.g711 import encode_alaw, encode_mulaw
from callsense.audio.pcm import float_to_int16
from callsense.audio.resample import resample
from callsense.core.settings import Settings  # noqa: E402


def script_offline_config(**overrides) -> rasr.RecognitionConfig:
    """What transcribe_file_offline.py builds from its default arguments plus --automatic-punctuation."""
    values = dict(language_code="en-US", max_alternatives=1, profanity_filter=False, enable_automatic_punctuation=True,
                  verbatim_transcripts=True, enable_word_time_offsets=False)
    values.update(overrides)
    config = riva_client.RecognitionConfig(**values)
    riva_client.add_word_boosting_to_config(config, None, 4.0)
    riva_client.add_endpoint_parameters_to_config(config, -1, -1.0, -1, -1, -1.0, -1.0)
    riva_client.add_custom_configuration_to_config(config, "")
    return config


def transcript(response) -> str:
    return " ".join(r.alternatives[0].transcript for r in response.results if r.alternatives)


@pytest.fixture(scope="module")
def embedded():
    from callsense.asr.base import create_asr_engine

    return create_asr_engine(Settings(asr_engine="whisper"))


@pytest.mark.parametrize("name", ["spk1_snt1.wav", "spk2_snt4.wav", "jfk.flac"])
def test_offline_file_as_nvidia_script_sends_it_gives_the_embedded_words(name, riva_auth, shared_audio, shared_clip,
                                                                          embedded, normalize, capsys):
    asr = riva_client.ASRService(riva_auth)
    data = (shared_audio / name).read_bytes()  # header and all, encoding unset: as the script does
    response = asr.offline_recognize(data, script_offline_config())
    riva_client.print_offline(response)
    printed = capsys.readouterr().out
    audio, reference = shared_clip(name)
    expected = " ".join(s.text for s in embedded.transcribe(audio))
    assert normalize(transcript(response)) == normalize(expected)
    assert f"Final transcript: {response.results[0].alternatives[0].transcript}" in printed
    assert jiwer.wer(reference, normalize(transcript(response))) <= 0.2


def test_word_time_offsets_only_when_asked(riva_auth, shared_audio):
    asr = riva_client.ASRService(riva_auth)
    data = (shared_audio / "spk1_snt5.wav").read_bytes()
    with_words = asr.offline_recognize(data, script_offline_config(enable_word_time_offsets=True))
    words = [w for r in with_words.results for w in r.alternatives[0].words]
    assert len(words) >= 6
    assert all(w.start_time <= w.end_time for w in words)
    assert all(a.start_time <= b.start_time for a, b in zip(words, words[1:]))
    duration_ms = riva_client.get_wav_file_parameters(shared_audio / "spk1_snt5.wav")["duration"] * 1000
    assert 0 <= words[0].start_time < 1500 and words[-1].end_time <= duration_ms + 300  # milliseconds, as Riva sends
    assert "sunday" in words[0].word.lower() or "sunday" in [w.word.lower().strip(".,") for w in words]
    without = asr.offline_recognize(data, script_offline_config(enable_word_time_offsets=False))
    assert not any(r.alternatives[0].words for r in without.results)


def test_automatic_punctuation_off_gives_plain_lower_case(riva_auth, shared_audio):
    asr = riva_client.ASRService(riva_auth)
    response = asr.offline_recognize((shared_audio / "spk1_snt1.wav").read_bytes(),
                                     script_offline_config(enable_automatic_punctuation=False, enable_word_time_offsets=True))
    text = transcript(response)
    assert text == text.lower() and not any(ch in text for ch in ".,?!")
    assert [w.word for w in response.results[0].alternatives[0].words] == text.split()


def test_streaming_file_gives_interim_and_final_results(riva_auth, shared_audio, normalize, manifest):
    """transcribe_file.py: AudioChunkFileIterator (WAV header in the first chunk), interim results on."""
    asr = riva_client.ASRService(riva_auth)
    config = riva_client.StreamingRecognitionConfig(
        config=riva_client.RecognitionConfig(language_code="en-US", max_alternatives=1, enable_automatic_punctuation=True,
                                             verbatim_transcripts=True, enable_word_time_offsets=True),
        interim_results=True)
    path = shared_audio / "LJ050-0131.wav"
    with riva_client.AudioChunkFileIterator(path, 1600) as chunks:
        responses = list(asr.streaming_response_generator(audio_chunks=chunks, streaming_config=config))
    results = [r for resp in responses for r in resp.results]
    interim = [r for r in results if not r.is_final]
    final = [r for r in results if r.is_final]
    assert interim and final
    assert all(0 < r.stability <= 1 for r in interim)
    processed = [r.audio_processed for r in results]
    assert processed == sorted(processed) and processed[-1] == pytest.approx(riva_client.get_wav_file_parameters(path)["duration"], abs=0.05)
    words = [w for r in final for w in r.alternatives[0].words]
    assert all(a.start_time <= b.start_time for a, b in zip(words, words[1:]))
    assert words[-1].end_time > 5000  # offsets count from the start of the stream, not of each utterance
    reference = next(m["text"] for m in manifest if m["audio"] == path.name)
    heard = normalize(" ".join(r.alternatives[0].transcript for r in final))
    assert jiwer.wer(reference, heard) <= 0.25, heard
    out = io.StringIO()
    riva_client.print_streaming(responses, output_file=out, additional_info="no")
    assert out.getvalue().count("##") == len(final)


def _encodings(samples16k: np.ndarray) -> dict[str, tuple[int, int, bytes]]:
    """Encoding name -> (AudioEncoding, sample rate, bytes) of one clip."""
    import av

    enc = riva_client.AudioEncoding
    at8k = resample(samples16k, 16000, 8000)
    at44k = resample(samples16k, 16000, 44100)
    flac = io.BytesIO()
    with av.open(flac, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(float_to_int16(samples16k).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return {
        "LINEAR_PCM-16k-raw": (enc.LINEAR_PCM, 16000, float_to_int16(samples16k).tobytes()),
        "LINEAR_PCM-44k-raw": (enc.LINEAR_PCM, 44100, float_to_int16(at44k).tobytes()),
        "LINEAR_PCM-8k-raw": (enc.LINEAR_PCM, 8000, float_to_int16(at8k).tobytes()),
        "MULAW-8k": (enc.MULAW, 8000, encode_mulaw(float_to_int16(at8k))),
        "ALAW-8k": (enc.ALAW, 8000, encode_alaw(float_to_int16(at8k))),
        "FLAC": (enc.FLAC, 16000, flac.getvalue()),
        "OGGOPUS": (enc.OGGOPUS, 48000, encode_ogg_opus(samples16k, 16000)),
    }


@pytest.fixture(scope="module")
def encoded_clip(shared_clip):
    audio, reference = shared_clip("spk1_snt4.wav")
    return _encodings(audio), reference


ENCODING_CASES = ["LINEAR_PCM-16k-raw", "LINEAR_PCM-44k-raw", "LINEAR_PCM-8k-raw", "MULAW-8k", "ALAW-8k", "FLAC", "OGGOPUS"]


@pytest.mark.parametrize("case", ENCODING_CASES)
def test_offline_encodings(case, encoded_clip, riva_auth, normalize):
    variants, reference = encoded_clip
    encoding, rate, data = variants[case]
    config = riva_client.RecognitionConfig(encoding=encoding, sample_rate_hertz=rate, language_code="en-US",
                                           enable_automatic_punctuation=True, audio_channel_count=1)
    heard = normalize(transcript(riva_client.ASRService(riva_auth).offline_recognize(data, config)))
    assert jiwer.wer(reference, heard) <= 0.3, heard


@pytest.mark.parametrize("case", ["MULAW-8k", "OGGOPUS", "FLAC"])
def test_streaming_encodings(case, encoded_clip, riva_auth, normalize):
    variants, reference = encoded_clip
    encoding, rate, data = variants[case]
    config = riva_client.StreamingRecognitionConfig(
        config=riva_client.RecognitionConfig(encoding=encoding, sample_rate_hertz=rate, language_code="en-US",
                                             enable_automatic_punctuation=True),
        interim_results=False)
    pieces = [data[i:i + 700] for i in range(0, len(data), 700)]
    responses = riva_client.ASRService(riva_auth).streaming_response_generator(pieces, config)
    heard = normalize(" ".join(r.alternatives[0].transcript for resp in responses for r in resp.results if r.is_final))
    assert jiwer.wer(reference, heard) <= 0.3, heard


def _code_and_details(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_bad_audio_is_invalid_argument_and_the_server_keeps_serving(riva_auth, shared_audio):
    asr = riva_client.ASRService(riva_auth)
    enc = riva_client.AudioEncoding
    pcm = b"\x01\x02" * 8000
    cases = [
        (riva_client.RecognitionConfig(encoding=7), pcm, "unsupported audio encoding"),  # not in AudioEncoding
        (riva_client.RecognitionConfig(encoding=enc.FLAC), pcm, "FLAC"),
        (riva_client.RecognitionConfig(encoding=enc.OGGOPUS), b"OggS" + b"\x00garbage" * 50, "cannot decode"),
        (riva_client.RecognitionConfig(encoding=enc.LINEAR_PCM, sample_rate_hertz=3), pcm, "out of range"),
        (riva_client.RecognitionConfig(encoding=enc.LINEAR_PCM), b"", "no audio"),
    ]
    for config, data, message in cases:
        code, details = _code_and_details(lambda: asr.offline_recognize(data, config))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, (code, details)
    bad_stream = riva_client.StreamingRecognitionConfig(config=riva_client.RecognitionConfig(encoding=42))
    code, details = _code_and_details(lambda: list(asr.streaming_response_generator([pcm], bad_stream)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unsupported audio encoding" in details
    corrupt_flac = riva_client.StreamingRecognitionConfig(config=riva_client.RecognitionConfig(encoding=enc.FLAC))
    code, details = _code_and_details(lambda: list(asr.streaming_response_generator([b"fLaC" + b"\xff" * 3000], corrupt_flac)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "FLAC" in details
    # Still serving after all of that.
    good = asr.offline_recognize((shared_audio / "spk2_snt2.wav").read_bytes(), script_offline_config())
    assert "joy" in transcript(good).lower()


def test_unknown_model_or_language_is_refused_with_the_name(riva_auth, shared_audio):
    asr = riva_client.ASRService(riva_auth)
    data = (shared_audio / "spk2_snt2.wav").read_bytes()
    code, details = _code_and_details(lambda: asr.offline_recognize(data, script_offline_config(model="parakeet-xxl")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "parakeet-xxl" in details
    code, details = _code_and_details(lambda: asr.offline_recognize(data, script_offline_config(language_code="de-DE")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "de-DE" in details


def test_list_models_as_the_scripts_do(riva_auth):
    asr = riva_client.ASRService(riva_auth)
    response = asr.stub.GetRivaSpeechRecognitionConfig(rasr.RivaSpeechRecognitionConfigRequest())
    by_type = {m.parameters["type"]: m for m in response.model_config}
    assert set(by_type) == {"offline", "online"}
    assert all(m.parameters["language_code"] == "en-US" for m in response.model_config)
    # The listed model names are accepted in requests.
    offline = by_type["offline"].model_name
    config = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, model=offline)
    assert asr.offline_recognize(b"\x00\x00" * 1600, config) is not None


def test_concurrent_streams_do_not_mix(riva_auth, shared_audio, normalize, manifest):
    names = ["spk1_snt1.wav", "spk1_snt3.wav", "spk1_snt4.wav", "spk2_snt4.wav"]
    refs = {m["audio"]: m["text"] for m in manifest}
    heard: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            asr = riva_client.ASRService(riva_auth)
            config = riva_client.StreamingRecognitionConfig(
                config=riva_client.RecognitionConfig(language_code="en-US", enable_automatic_punctuation=True), interim_results=False)
            with riva_client.AudioChunkFileIterator(shared_audio / name, 1600) as chunks:
                responses = asr.streaming_response_generator(chunks, config)
                heard[name] = normalize(" ".join(r.alternatives[0].transcript for resp in responses for r in resp.results if r.is_final))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for name in names:
        assert jiwer.wer(refs[name], heard[name]) <= 0.35, (name, heard[name])


def test_stereo_call_recognized_per_channel(riva_auth, shared_audio, manifest, normalize):
    """A two-speaker recording, one speaker per channel, as support calls are stored."""
    path = shared_audio / "stereo_diarization.wav"
    config = script_offline_config(enable_separate_recognition_per_channel=True, audio_channel_count=2)
    response = riva_client.ASRService(riva_auth).offline_recognize(path.read_bytes(), config)
    by_channel: dict[int, str] = {}
    for r in response.results:
        by_channel[r.channel_tag] = (by_channel.get(r.channel_tag, "") + " " + r.alternatives[0].transcript).strip()
    assert set(by_channel) == {1, 2}
    refs = {m["channel"]: m["text"] for m in manifest if m["audio"] == path.name}
    assert jiwer.wer(refs[0], normalize(by_channel[1])) <= 0.25, by_channel
    assert jiwer.wer(refs[1], normalize(by_channel[2])) <= 0.25, by_channel
