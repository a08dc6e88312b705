"""The Riva gRPC services, implemented with the stubs shipped in `riva.client.proto`.

- RivaSpeechRecognition: Recognize, StreamingRecognize, GetRivaSpeechRecognitionConfig
- RivaSpeechSynthesis: Synthesize, SynthesizeOnline, GetRivaSynthesisConfig
- RivaLanguageUnderstanding: ClassifyText (sentence sentiment), AnalyzeIntent (the
  assistant's embedded NLU, when installed), GetRivaNLPConfig; the rest answer UNIMPLEMENTED
- grpc.health.v1.Health

Bad requests get INVALID_ARGUMENT with a message; nothing a client sends crashes the server.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property

import grpc
import numpy as np
import riva.client.proto.health_pb2 as health_pb
import riva.client.proto.health_pb2_grpc as health_grpc
import riva.client.proto.riva_asr_pb2 as asr_pb
import riva.client.proto.riva_asr_pb2_grpc as asr_grpc
import riva.client.proto.riva_nlp_pb2 as nlp_pb
import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc
import riva.client.proto.riva_tts_pb2 as tts_pb
import riva.client.proto.riva_tts_pb2_grpc as tts_grpc

from callsense.serve.riva import audio as ra
from callsense.serve.riva.recognizer import EmbeddedRecognizer, Recognized, RecognizeOptions
from callsense.serve.riva.streaming import ChannelStream, StreamResult
from callsense.asr.tts.base import TtsEngine, TtsUnavailable
from callsense.core.settings import Settings
from callsense.audio.vad import EndpointerOptions, SileroModel

log = logging.getLogger("callsense.riva_serve")

LANGUAGE = "en-US"
TTS_VOICE_BASE = "callsense-espeak"
SERVICE_NAMES = (
    "nvidia.riva.asr.RivaSpeechRecognition",
    "nvidia.riva.tts.RivaSpeechSynthesis",
    "nvidia.riva.nlp.RivaLanguageUnderstanding",
)


def _language_ok(code: str) -> bool:
    return not code or code.lower().split("-")[0] == "en"


# --------------------------------------------------------------------------- ASR


def recognize_options(config: asr_pb.RecognitionConfig) -> RecognizeOptions:
    boosted = tuple((p, float(ctx.boost)) for ctx in config.speech_contexts for p in ctx.phrases)
    return RecognizeOptions(automatic_punctuation=config.enable_automatic_punctuation,
                            word_time_offsets=config.enable_word_time_offsets, boosted=boosted)


def _word_infos(words) -> list[asr_pb.WordInfo]:
    return [asr_pb.WordInfo(word=w.text, start_time=int(round(w.start * 1000)), end_time=int(round(w.end * 1000)),
                            confidence=float(w.probability)) for w in words]


class SpeechRecognitionService(asr_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, settings: Settings, recognizer: EmbeddedRecognizer, vad: SileroModel):
        self.settings = settings
        self.recognizer = recognizer
        self.vad = vad
        engine = settings.riva.serve_asr_engine
        self.offline_model = f"callsense-{engine}-en-US"
        self.streaming_model = f"callsense-{engine}-en-US-streaming"

    def _check(self, config: asr_pb.RecognitionConfig, context, kind: str) -> None:
        if config.model and config.model not in (self.offline_model, self.streaming_model):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unavailable model requested given these parameters: model_name={config.model}; type={kind} "
                          f"(riva-serve serves: {self.offline_model}, {self.streaming_model})")
        if not _language_ok(config.language_code):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unavailable model requested given these parameters: language_code={config.language_code}; "
                          f"type={kind} (riva-serve recognizes English: {LANGUAGE})")
        if config.max_alternatives > 1:
            log.debug("max_alternatives=%d: riva-serve returns one alternative", config.max_alternatives)

    # ---- offline

    def Recognize(self, request: asr_pb.RecognizeRequest, context) -> asr_pb.RecognizeResponse:
        config = request.config
        self._check(config, context, "offline")
        try:
            channels = ra.decode_request_audio(request.audio, config.encoding, config.sample_rate_hertz, config.audio_channel_count)
        except ra.UnsupportedAudio as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        opts = recognize_options(config)
        duration = channels.shape[1] / ra.TARGET_RATE
        if config.enable_separate_recognition_per_channel and channels.shape[0] > 1:
            tracks = [(c + 1, channels[c]) for c in range(channels.shape[0])]
        else:
            tracks = [(0, channels.mean(axis=0) if channels.shape[0] > 1 else channels[0])]
        results = []
        for tag, track in tracks:
            for piece in self.recognizer.recognize(np.ascontiguousarray(track), opts):
                results.append(asr_pb.SpeechRecognitionResult(
                    alternatives=[self._alternative(piece, opts)], channel_tag=tag, audio_processed=duration))
        return asr_pb.RecognizeResponse(results=results, id=request.id)

    @staticmethod
    def _alternative(piece: Recognized | StreamResult, opts: RecognizeOptions) -> asr_pb.SpeechRecognitionAlternative:
        return asr_pb.SpeechRecognitionAlternative(
            transcript=piece.text, confidence=float(piece.confidence),
            words=_word_infos(piece.words) if opts.word_time_offsets else [], language_code=[LANGUAGE],
        )

    # ---- streaming

    def _endpointing(self, config: asr_pb.RecognitionConfig) -> EndpointerOptions:
        s = self.settings
        threshold, silence = s.pipeline.vad_threshold, s.pipeline.live_min_silence_ms
        if config.HasField("endpointing_config"):
            e = config.endpointing_config
            silence = e.stop_history if e.stop_history > 0 else silence
            threshold = e.start_threshold if 0 < e.start_threshold < 1 else threshold
        return EndpointerOptions(threshold=threshold, min_silence_ms=max(silence, 50), speech_pad_ms=s.pipeline.vad_speech_pad_ms,
                                 max_utterance_s=s.pipeline.vad_max_utterance_s)

    def StreamingRecognize(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None:
            return
        if not first.HasField("streaming_config"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message of a stream must carry streaming_config")
        config = first.streaming_config.config
        self._check(config, context, "online")
        opts = recognize_options(config)
        try:
            decoder = ra.StreamingAudioDecoder(config.encoding, config.sample_rate_hertz, config.audio_channel_count)
        except ra.UnsupportedAudio as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        separate = config.enable_separate_recognition_per_channel
        streams: list[ChannelStream] = []

        def channel_streams(n: int) -> list[ChannelStream]:
            if not streams:
                tags = [c + 1 for c in range(n)] if separate and n > 1 else [0]
                streams.extend(ChannelStream(self.recognizer, self.vad, opts, self._endpointing(config),
                                             interim=first.streaming_config.interim_results,
                                             interim_every_s=self.settings.riva.serve_interim_s, channel_tag=t)
                               for t in tags)
            return streams

        def feed(block: np.ndarray) -> list[StreamResult]:
            if block.shape[1] == 0:
                return []
            chans = channel_streams(block.shape[0])
            if len(chans) == 1:
                return chans[0].push(block.mean(axis=0) if block.shape[0] > 1 else block[0])
            return [r for c, ch in enumerate(chans) for r in ch.push(block[c])]

        def response(results: list[StreamResult]) -> asr_pb.StreamingRecognizeResponse:
            return asr_pb.StreamingRecognizeResponse(id=first.id, results=[asr_pb.StreamingRecognitionResult(
                alternatives=[self._alternative(r, opts)], is_final=r.is_final, stability=r.stability,
                channel_tag=r.channel_tag, audio_processed=r.audio_processed) for r in results])

        requests = [first] if first.audio_content else []
        try:
            for request in _chain(requests, request_iterator):
                if request.HasField("streaming_config"):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "streaming_config may only be sent in the first message")
                results = feed(decoder.push(request.audio_content))
                if results:
                    yield response(results)
                if not context.is_active():
                    return
            results = feed(decoder.finish())
            for ch in streams:
                results += ch.finish()
        except ra.UnsupportedAudio as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if results:
            yield response(results)

    def GetRivaSpeechRecognitionConfig(self, request, context) -> asr_pb.RivaSpeechRecognitionConfigResponse:
        common = {"language_code": LANGUAGE, "sample_rate": "16000", "engine": self.recognizer.model_id,
                  "word_boosting": "hotwords" if self.recognizer.supports_boosting else "no"}
        configs = [
            asr_pb.RivaSpeechRecognitionConfigResponse.Config(model_name=self.offline_model,
                                                              parameters={**common, "type": "offline", "streaming": "false"}),
            asr_pb.RivaSpeechRecognitionConfigResponse.Config(model_name=self.streaming_model,
                                                              parameters={**common, "type": "online", "streaming": "true"}),
        ]
        if request.model_name:
            configs = [c for c in configs if c.model_name == request.model_name]
        return asr_pb.RivaSpeechRecognitionConfigResponse(model_config=configs)


def _chain(first: list, rest):
    yield from first
    yield from rest


# --------------------------------------------------------------------------- TTS


class SpeechSynthesisService(tts_grpc.RivaSpeechSynthesisServicer):
    def __init__(self, settings: Settings, engine: TtsEngine):
        self.settings = settings
        self.engine = engine
        self.model_name = f"callsense-{engine.name}-en-US"
        self.voices = [v for v in engine.voices() if _language_ok(v.language)] or engine.voices()

    def _voice(self, name: str, context) -> str | None:
        if not name:
            return None
        wanted = name.lower()
        for v in self.voices:
            if wanted in (v.name.lower(), f"{TTS_VOICE_BASE}.{v.name}".lower()):
                return v.name
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"unknown voice '{name}'; riva-serve voices: "
                      + ", ".join(f"{TTS_VOICE_BASE}.{v.name}" for v in self.voices[:12]))

    def _check(self, request: tts_pb.SynthesizeSpeechRequest, context) -> tuple[str | None, int, int]:
        if not _language_ok(request.language_code):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unavailable model requested given these parameters: language_code={request.language_code} "
                          f"(riva-serve speaks English: {LANGUAGE})")
        encoding = request.encoding or ra.LINEAR_PCM
        if encoding not in (ra.LINEAR_PCM, ra.MULAW, ra.ALAW, ra.OGGOPUS):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unsupported output encoding {ra.encoding_name(encoding)}; riva-serve synthesizes LINEAR_PCM, "
                          "MULAW, ALAW or OGGOPUS")
        rate = request.sample_rate_hz or 22050
        if not 8000 <= rate <= 48000:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"sample_rate_hz {rate} is out of range (8000-48000)")
        return self._voice(request.voice_name, context), rate, encoding

    @staticmethod
    def _encode(samples: np.ndarray, rate: int, encoding: int) -> bytes:
        from callsense.audio.encode import encode_ogg_opus
        from callsense.audio.g711 import encode_alaw, encode_mulaw
        from callsense.audio.pcm import float_to_int16

        if encoding == ra.MULAW:
            return encode_mulaw(float_to_int16(samples))
        if encoding == ra.ALAW:
            return encode_alaw(float_to_int16(samples))
        if encoding == ra.OGGOPUS:
            return encode_ogg_opus(samples, rate)
        return float_to_int16(samples).tobytes()

    def _synthesize(self, text: str, voice: str | None, rate: int, context, stream: bool):
        try:
            if stream:
                yield from self.engine.synthesize_stream(text, voice=voice, sample_rate=rate)
            else:
                yield self.engine.synthesize(text, voice=voice, sample_rate=rate)
        except TtsUnavailable as e:
            context.abort(grpc.StatusCode.INTERNAL, f"synthesis failed: {e}")

    def Synthesize(self, request, context) -> tts_pb.SynthesizeSpeechResponse:
        if not request.text.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request holds no text to synthesize")
        voice, rate, encoding = self._check(request, context)
        clip = next(self._synthesize(request.text, voice, rate, context, stream=False))
        return tts_pb.SynthesizeSpeechResponse(
            audio=self._encode(clip.samples, rate, encoding), id=request.id,
            meta=tts_pb.SynthesizeSpeechResponseMetadata(text=request.text, processed_text=request.text))

    def SynthesizeOnline(self, request_iterator, context):
        for request in request_iterator:
            if not request.text.strip():
                continue
            voice, rate, encoding = self._check(request, context)
            for chunk in self._synthesize(request.text, voice, rate, context, stream=True):
                if not context.is_active():
                    return
                yield tts_pb.SynthesizeSpeechResponse(
                    audio=self._encode(chunk.samples, rate, encoding), id=request.id,
                    meta=tts_pb.SynthesizeSpeechResponseMetadata(text=chunk.text, processed_text=chunk.text))

    def GetRivaSynthesisConfig(self, request, context) -> tts_pb.RivaSynthesisConfigResponse:
        if request.model_name and request.model_name != self.model_name:
            return tts_pb.RivaSynthesisConfigResponse()
        return tts_pb.RivaSynthesisConfigResponse(model_config=[tts_pb.RivaSynthesisConfigResponse.Config(
            model_name=self.model_name,
            parameters={"language_code": LANGUAGE, "voice_name": TTS_VOICE_BASE, "engine": self.engine.model_id,
                        "subvoices": ",".join(f"{v.name}:{i}" for i, v in enumerate(self.voices)),
                        "encodings": "LINEAR_PCM,MULAW,ALAW,OGGOPUS"},
        )])


# --------------------------------------------------------------------------- NLP


class LanguageUnderstandingService(nlp_grpc.RivaLanguageUnderstandingServicer):
    """ClassifyText is sentence sentiment; AnalyzeIntent is the assistant's NLU. Both load
    on first use, so a server without them still serves speech."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.sentiment_names = {settings.riva.sentiment_model, "callsense-sentiment"}
        self._lock = threading.Lock()

    @cached_property
    def _sentiment(self):
        """(model, None) or (None, why it is missing)."""
        from callsense.nlp.sentiment.base import create_sentiment_model
        from callsense.core.registry import UnknownBackend

        backend = self.settings.riva.serve_sentiment_backend
        if backend == "riva":
            return None, "riva-serve cannot use the riva sentiment backend (it would call itself)"
        try:
            return create_sentiment_model(self.settings.model_copy(update={"sentiment_backend": backend})), None
        except (UnknownBackend, RuntimeError, OSError, ImportError) as e:
            return None, str(e)

    @cached_property
    def _nlu(self):
        try:
            from callsense.dialog.nlu.base import create_nlu, nlu_backends

            if self.settings.dialog.nlu_backend == "riva":  # that would call this server
                return nlu_backends.get("embedded")(self.settings), None
            return create_nlu(self.settings), None
        except ModuleNotFoundError as e:
            return None, f"the assistant's embedded NLU is not installed here ({e.name} is missing)"
        except Exception as e:  # a broken NLU must not take the server down
            return None, f"the assistant's embedded NLU failed to load: {e.__class__.__name__}: {e}"

    def ClassifyText(self, request, context) -> nlp_pb.TextClassResponse:
        name = request.model.model_name
        if name and name not in self.sentiment_names:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unavailable model requested given these parameters: model_name={name} "
                          f"(riva-serve classifies with: {', '.join(sorted(self.sentiment_names))})")
        if not _language_ok(request.model.language_code):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Unavailable model requested given these parameters: language_code={request.model.language_code}")
        with self._lock:
            model, why = self._sentiment
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"model '{name or self.settings.riva.sentiment_model}' is not loaded: {why}")
        scores = model.score(list(request.text))
        results = []
        for sc in scores:
            ranked = sorted(sc.probabilities.items(), key=lambda kv: -kv[1])
            if request.top_n:
                ranked = ranked[: request.top_n]
            results.append(nlp_pb.ClassificationResult(labels=[nlp_pb.Classification(class_name=k, score=v) for k, v in ranked]))
        return nlp_pb.TextClassResponse(results=results, id=request.id)

    def AnalyzeIntent(self, request, context) -> nlp_pb.AnalyzeIntentResponse:
        with self._lock:
            nlu, why = self._nlu
        if nlu is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"AnalyzeIntent is not available: {why}")
        from callsense.dialog.nlu.base import NluUnavailable

        try:
            result = nlu.parse(request.query)
        except NluUnavailable as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the NLU failed: {e}")
        domain = request.options.domain or result.intent.split(".")[0]
        return nlp_pb.AnalyzeIntentResponse(
            intent=nlp_pb.Classification(class_name=result.intent, score=result.confidence),
            slots=[nlp_pb.TokenClassValue(token=text, label=[nlp_pb.Classification(class_name=slot, score=result.confidence)])
                   for slot, text in result.slots.items()],
            domain_str=domain, domain=nlp_pb.Classification(class_name=domain, score=result.confidence), id=request.id,
        )

    def _unimplemented(self, method: str, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"riva-serve does not implement {method}; it serves ClassifyText (sentiment) and AnalyzeIntent")

    def ClassifyTokens(self, request, context):
        self._unimplemented("ClassifyTokens", context)

    def TransformText(self, request, context):
        self._unimplemented("TransformText", context)

    def AnalyzeEntities(self, request, context):
        self._unimplemented("AnalyzeEntities", context)

    def PunctuateText(self, request, context):
        self._unimplemented("PunctuateText", context)

    def NaturalQuery(self, request, context):
        self._unimplemented("NaturalQuery", context)

    def GetRivaNLPConfig(self, request, context) -> nlp_pb.RivaNLPConfigResponse:
        configs = [nlp_pb.RivaNLPConfigResponse.Config(
            model_name=self.settings.riva.sentiment_model,
            parameters={"type": "text_classification", "language_code": LANGUAGE,
                        "labels": "negative,neutral,positive", "backend": self.settings.riva.serve_sentiment_backend})]
        if request.model_name:
            configs = [c for c in configs if c.model_name == request.model_name]
        return nlp_pb.RivaNLPConfigResponse(model_config=configs)


# --------------------------------------------------------------------------- health


class HealthService(health_grpc.HealthServicer):
    def __init__(self, stopping: threading.Event):
        self.stopping = stopping

    def _status(self, service: str, context):
        if service and service not in SERVICE_NAMES:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service '{service}'")
        serving = health_pb.HealthCheckResponse.ServingStatus
        return serving.NOT_SERVING if self.stopping.is_set() else serving.SERVING

    def Check(self, request, context):
        return health_pb.HealthCheckResponse(status=self._status(request.service, context))

    def Watch(self, request, context):
        status = self._status(request.service, context)
        yield health_pb.HealthCheckResponse(status=status)
        done = threading.Event()
        context.add_callback(done.set)
        while not done.is_set():
            if self.stopping.wait(0.5):
                yield health_pb.HealthCheckResponse(status=health_pb.HealthCheckResponse.ServingStatus.NOT_SERVING)
                return
