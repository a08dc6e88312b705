"""riva-serve's RivaSpeechSynthesis, RivaLanguageUnderstanding and health services
through the real `riva.client` API (what NVIDIA's talk.py and NLP scripts call)."""

from __future__ import annotations

import io
import wave

import grpc
import numpy as np
import pytest

riva_client = pytest.importorskip("riva.client", reason="nvidia-riva-client is not installed (pip install callsense[riva])")
import riva.client.proto.health_pb2 as health_pb  # noqa: E402
import riva.client.proto.health_pb2_grpc as health_grpc  # noqa: E402
import riva.client.proto.riva_tts_pb2 as rtts  # noqa: E402

from callsense.core.settings import Settings  # noqa: E402
from callsense.nlp.sentiment.base import DEFAULT_MODEL_DIR  # noqa: E402

TEXT = "Thank you for calling. How can I help you today?"


def recognize_pcm(riva_auth, pcm: bytes, rate: int) -> str:
    config = riva_client.RecognitionConfig(encoding=riva_client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=rate,
                                           language_code="en-US", enable_automatic_punctuation=True)
    response = riva_client.ASRService(riva_auth).offline_recognize(pcm, config)
    return " ".join(r.alternatives[0].transcript for r in response.results)


def test_synthesize_then_recognize_gives_back_the_words(riva_auth, normalize):
    tts = riva_client.SpeechSynthesisService(riva_auth)
    response = tts.synthesize(TEXT, None, "en-US", sample_rate_hz=44100)  # talk.py's default rate
    pcm = response.audio
    assert len(pcm) // 2 / 44100 == pytest.approx(2.6, abs=1.2)  # raw 16-bit PCM, no header, at the rate asked
    # talk.py writes the bytes into a WAV file as they come.
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(44100)
        out.writeframesraw(pcm)
    assert normalize(recognize_pcm(riva_auth, pcm, 44100)) == normalize(TEXT)
    assert response.meta.text == TEXT


def test_synthesize_online_streams_one_chunk_per_sentence(riva_auth, normalize):
    tts = riva_client.SpeechSynthesisService(riva_auth)
    chunks = list(tts.synthesize_online(TEXT, None, "en-US", sample_rate_hz=16000))
    assert len(chunks) == 2 and all(c.audio for c in chunks)
    heard = recognize_pcm(riva_auth, b"".join(c.audio for c in chunks), 16000)
    assert normalize(heard) == normalize(TEXT)


def test_synthesis_encodings_and_voices(riva_auth, normalize):
    from callsense.audio.decode import decode_audio
    from callsense.audio.g711 import pcm_to_int16

    tts = riva_client.SpeechSynthesisService(riva_auth)
    enc = riva_client.AudioEncoding
    mulaw = tts.synthesize("I would like a refund.", None, "en-US", encoding=enc.MULAW, sample_rate_hz=8000).audio
    samples = pcm_to_int16(mulaw, "mulaw")
    assert samples.size == len(mulaw) and np.abs(samples).max() > 3000  # one byte per sample, real sound
    opus = tts.synthesize("I would like a refund.", None, "en-US", encoding=enc.OGGOPUS, sample_rate_hz=48000).audio
    decoded = decode_audio(opus)
    assert opus[:4] == b"OggS" and decoded.codec == "opus" and decoded.duration_s > 0.8
    # talk.py --list-voices
    config = tts.stub.GetRivaSynthesisConfig(rtts.RivaSynthesisConfigRequest())
    params = config.model_config[0].parameters
    voices = [params["voice_name"] + "." + v.split(":")[0] for v in params["subvoices"].split(",")]
    assert "callsense-espeak.en-us" in voices and params["language_code"] == "en-US"
    british = tts.synthesize("Hello.", "callsense-espeak.en-gb", "en-US", sample_rate_hz=16000).audio
    assert len(british) > 8000
    with pytest.raises(grpc.RpcError) as info:
        tts.synthesize("Hello.", "English-US.Female-1", "en-US")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "English-US.Female-1" in info.value.details()
    for kwargs, message in ((dict(encoding=enc.FLAC), "unsupported output encoding"), (dict(sample_rate_hz=1000), "out of range")):
        with pytest.raises(grpc.RpcError) as info:
            tts.synthesize("Hello.", None, "en-US", **kwargs)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        tts.synthesize("   ", None, "en-US")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_service(riva_auth):
    stub = health_grpc.HealthStub(riva_auth.channel)
    serving = health_pb.HealthCheckResponse.ServingStatus.SERVING
    assert stub.Check(health_pb.HealthCheckRequest()).status == serving
    assert stub.Check(health_pb.HealthCheckRequest(service="nvidia.riva.asr.RivaSpeechRecognition")).status == serving
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb.HealthCheckRequest(service="no.such.Service"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    watch = stub.Watch(health_pb.HealthCheckRequest())
    assert next(watch).status == serving
    watch.cancel()


def sentiment_model_present() -> bool:
    return (DEFAULT_MODEL_DIR / "manifest.json").is_file()


@pytest.mark.skipif(not sentiment_model_present(), reason=f"the sentiment model is not built yet ({DEFAULT_MODEL_DIR})")
def test_classify_text_is_sentence_sentiment(riva_auth):
    nlp = riva_client.NLPService(riva_auth)
    texts = ["Thank you so much, that fixed it, you are wonderful!",
             "This is the third time I call and nobody helps me, I am furious."]
    classes, confidences = riva_client.extract_most_probable_text_class_and_confidence(
        nlp.classify_text(texts, "callsense-sentiment", "en-US"))
    assert classes == ["positive", "negative"]
    assert all(0.34 < c <= 1 for c in confidences)
    all_classes, _ = riva_client.extract_all_text_classes_and_confidences(nlp.classify_text(texts[:1], "", "en-US"))
    assert sorted(all_classes[0]) == ["negative", "neutral", "positive"]


def test_classify_text_refuses_unknown_model(riva_auth):
    with pytest.raises(grpc.RpcError) as info:
        riva_client.NLPService(riva_auth).classify_text(["hello"], "riva_text_classification_domain", "en-US")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "riva_text_classification_domain" in info.value.details()


def test_analyze_intent_answers_or_explains(riva_auth):
    nlp = riva_client.NLPService(riva_auth)
    try:
        response = nlp.analyze_intent("will it rain next week in Los Angeles?",
                                      riva_client.AnalyzeIntentOptions(lang="en-US"))
    except grpc.RpcError as e:
        # Without the assistant's embedded NLU model the call says why, instead of failing obscurely.
        assert e.code() == grpc.StatusCode.UNIMPLEMENTED and "AnalyzeIntent is not available" in e.details()
        return
    assert response.intent.class_name and 0 <= response.intent.score <= 1
    assert response.domain_str


def test_unimplemented_nlp_calls_say_so(riva_auth):
    with pytest.raises(grpc.RpcError) as info:
        riva_client.NLPService(riva_auth).punctuate_text(["hello world"])
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED and "PunctuateText" in info.value.details()


def test_riva_sentiment_backend_through_classify_text(riva_settings):
    from callsense.nlp.sentiment.base import SentimentUnavailable, create_sentiment_model

    settings = riva_settings.model_copy(update={"sentiment_backend": "riva"})
    model = create_sentiment_model(settings)
    assert model.model_id == "riva:callsense-sentiment"
    texts = ["Thank you so much, that fixed it, you are wonderful!", "I am furious, nobody ever helps me."]
    if not sentiment_model_present():
        with pytest.raises(SentimentUnavailable, match="callsense-sentiment.*is not loaded"):
            model.score(texts)
        return
    scores = model.score(texts)
    assert [s.label for s in scores] == ["positive", "negative"]
    assert all(set(s.probabilities) == {"negative", "neutral", "positive"} for s in scores)
    assert abs(sum(scores[0].probabilities.values()) - 1) < 0.01


def test_sentiment_label_mapping():
    from callsense.nlp.sentiment.riva_model import label_of, parse_label_map

    mapping = parse_label_map("LABEL_0:negative, LABEL_1:neutral,LABEL_2:positive")
    assert [label_of(n, mapping) for n in ("LABEL_0", "label_2", "Positive", "NEG", "neutral", "joy")] == [
        "negative", "positive", "positive", "negative", "neutral", None]
    from callsense.nlp.sentiment.base import SentimentUnavailable

    with pytest.raises(SentimentUnavailable, match="LABEL_9:angry"):
        parse_label_map("LABEL_9:angry")


def test_riva_sentiment_backend_dead_server_is_transient(pick_ports):
    from callsense.core.errors import TransientError
    from callsense.nlp.sentiment.base import SentimentUnavailable, create_sentiment_model

    url = f"127.0.0.1:{pick_ports(1)[0]}"
    model = create_sentiment_model(Settings(sentiment_backend="riva", riva_url=url, riva_retries=1, riva_retry_backoff_s=0.05))
    with pytest.raises(SentimentUnavailable, match=f"{url}.*callsense-sentiment.*after 2 tries") as info:
        model.score(["hello"])
    assert isinstance(info.value, TransientError)


@pytest.fixture(scope="module")
def keyword_nlu_url():
    """A gRPC server hosting only riva-serve's language service, with the assistant's
    rule-based NLU (no model file needed)."""
    from concurrent import futures

    import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc

    from callsense.serve.riva.services import LanguageUnderstandingService
    from callsense.dialog.nlu.base import nlu_backends

    if "keywords" not in nlu_backends.names():
        pytest.skip("the assistant's keywords NLU backend is not available")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    nlp_grpc.add_RivaLanguageUnderstandingServicer_to_server(LanguageUnderstandingService(Settings(nlu_backend="keywords")), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_analyze_intent_with_the_assistants_nlu(keyword_nlu_url):
    nlp = riva_client.NLPService(riva_client.Auth(uri=keyword_nlu_url))
    response = nlp.analyze_intent("will it rain next week in Los Angeles?", riva_client.AnalyzeIntentOptions(lang="en-US"))
    assert response.intent.class_name == "weather.rainfall_yes_no" and response.domain_str == "weather"
    slots = {s.label[0].class_name: s.token for s in response.slots}
    assert slots.get("location", "").lower() == "los angeles"
    # The dialog's riva NLU backend reads the same answer back.
    from callsense.dialog.nlu.base import create_nlu

    parsed = create_nlu(Settings(nlu_backend="riva", riva_url=keyword_nlu_url)).parse("will it rain next week in Los Angeles?")
    assert parsed.intent == "weather.rainfall_yes_no" and parsed.slots.get("location", "").lower() == "los angeles"
