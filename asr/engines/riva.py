"""NVIDIA Riva engine: speech recognition by a Riva server through `nvidia-riva-client`.

Works against a real Riva deployment (GPU) and against `callsense riva-serve` (the same
API on CPU). Offline recognition serves the pipeline's transcribe stage; `transcribe_stream`
gives interim and final results for live audio.

Failures are split for the workers: a server that does not answer (UNAVAILABLE,
DEADLINE_EXCEEDED) is retried with backoff and then raised as `RivaUnavailable`, which is
both an `AsrUnavailable` (one clear line in the CLI) and a `TransientError` (the Kafka
transport keeps the event and retries). A server that lacks the requested model, or
refuses the request, raises a plain `AsrUnavailable`: retrying would not help.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

import numpy as np

from callsense.asr.base import AsrEngine, AsrUnavailable, RecognizedSegment, RecognizedWord, asr_engines
from callsense.core.settings import Settings
from callsense.core.errors import TransientError
from callsense.core.riva_client import RivaConnection as _RivaConnection
from callsense.core.riva_client import describe_refusal, riva_modules  # noqa: F401  (describe_refusal: used by callers)

log = logging.getLogger("callsense.riva")

T = TypeVar("T")
RATE = 16000


class RivaUnavailable(AsrUnavailable, TransientError):
    """The Riva server did not answer in time, after retries: the same request may work later."""


def riva_client():
    """`riva.client`, or one clear line naming the extra to install."""
    return riva_modules(AsrUnavailable)


class RivaConnection(_RivaConnection):
    """The shared Riva connection with the ASR engines' errors."""

    def __init__(self, settings: Settings):
        super().__init__(settings, setup_error=AsrUnavailable)

    def call(self, service, model, fn, *, unavailable=RivaUnavailable, permanent=AsrUnavailable, retries=None):
        return super().call(service, model, fn, unavailable=unavailable, permanent=permanent, retries=retries)


# --------------------------------------------------------------------------- word boosting


@dataclass(frozen=True)
class BoostedWord:
    phrase: str
    score: float


def parse_boosted_words(spec: str, default_score: float, source: str = "CALLSENSE_RIVA_BOOSTED_WORDS") -> list[BoostedWord]:
    """`Northwind:20,Contoso:20,Fabrikam` -> words with scores (lines work as separators too)."""
    out: list[BoostedWord] = []
    for raw in spec.replace("\n", ",").split(","):
        item = raw.split("#", 1)[0].strip()
        if not item:
            continue
        phrase, sep, score = item.rpartition(":")
        if not sep:
            phrase, score = item, ""
        phrase = phrase.strip()
        try:
            value = float(score) if score.strip() else default_score
        except ValueError:
            raise AsrUnavailable(f"bad boosted word {item!r} in {source}: the score after ':' must be a number "
                                 "(write `word:score`, e.g. `Contoso:20`)") from None
        if not phrase:
            raise AsrUnavailable(f"bad boosted word {item!r} in {source}: the word before ':' is empty")
        out.append(BoostedWord(phrase, value))
    return out


def boosted_words(settings: Settings) -> list[BoostedWord]:
    words = parse_boosted_words(settings.riva.boosted_words, settings.riva.default_boost)
    if settings.riva.boosted_words_file is not None:
        path = Path(settings.riva.boosted_words_file)
        try:
            text = path.read_text()
        except OSError as e:
            raise AsrUnavailable(f"cannot read the boosted words file {path}: {e.strerror} (CALLSENSE_RIVA_BOOSTED_WORDS_FILE)") from None
        words += parse_boosted_words(text, settings.riva.default_boost, source=str(path))
    return words


def add_speech_contexts(config, words: Iterable[BoostedWord]) -> None:
    """One SpeechContext per boost score, as `riva.client.add_word_boosting_to_config` builds them."""
    riva_client()
    import riva.client.proto.riva_asr_pb2 as rasr

    by_score: dict[float, list[str]] = {}
    for w in words:
        by_score.setdefault(w.score, []).append(w.phrase)
    for score, phrases in by_score.items():
        config.speech_contexts.append(rasr.SpeechContext(phrases=phrases, boost=score))


def server_models(conn: RivaConnection, kind: str) -> list[tuple[str, dict[str, str]]] | None:
    """(name, parameters) of the server's ASR or TTS models; None when the server cannot say."""
    import grpc

    riva_client()
    if kind == "asr":
        import riva.client.proto.riva_asr_pb2 as pb
        import riva.client.proto.riva_asr_pb2_grpc as pb_grpc

        stub = pb_grpc.RivaSpeechRecognitionStub(conn.auth.channel)
        method, request = stub.GetRivaSpeechRecognitionConfig, pb.RivaSpeechRecognitionConfigRequest()
    else:
        import riva.client.proto.riva_tts_pb2 as pb
        import riva.client.proto.riva_tts_pb2_grpc as pb_grpc

        stub = pb_grpc.RivaSpeechSynthesisStub(conn.auth.channel)
        method, request = stub.GetRivaSynthesisConfig, pb.RivaSynthesisConfigRequest()
    try:
        response = method(request, metadata=conn.auth.get_auth_metadata(), timeout=min(conn.settings.riva.timeout_s, 5.0))
    except grpc.RpcError:
        return None
    return [(m.model_name, dict(m.parameters)) for m in response.model_config]


# --------------------------------------------------------------------------- results


@dataclass
class StreamingTranscript:
    """One streaming result: interim (is_final False, may still change) or final."""

    text: str
    is_final: bool
    stability: float
    start: float
    end: float
    words: list[RecognizedWord] = field(default_factory=list)
    confidence: float | None = None
    channel: int = 0
    audio_processed: float = 0.0


def _bare(token: str) -> str:
    return "".join(ch for ch in token.lower() if ch.isalnum() or ch == "'")


def words_of(alternative, offset_s: float = 0.0) -> list[RecognizedWord]:
    """WordInfo (milliseconds) -> RecognizedWord (seconds). Punctuation that the server put
    only in the transcript is carried onto the words, so sentences can be split."""
    tokens = alternative.transcript.split()
    infos = list(alternative.words)
    same_count = len(tokens) == len(infos)
    out = []
    for i, w in enumerate(infos):
        text = w.word
        if same_count and _bare(tokens[i]) == _bare(w.word):
            text = tokens[i]
        prob = w.confidence if w.confidence > 0 else (alternative.confidence if alternative.confidence > 0 else 1.0)
        out.append(RecognizedWord(text, w.start_time / 1000 + offset_s, w.end_time / 1000 + offset_s, float(prob)))
    return out


def segments_of(response, duration_s: float) -> Iterator[RecognizedSegment]:
    for result in response.results:
        if not result.alternatives:
            continue
        alt = result.alternatives[0]
        text = alt.transcript.strip()
        if not text:
            continue
        words = words_of(alt)
        start, end = (words[0].start, words[-1].end) if words else (0.0, duration_s)
        yield RecognizedSegment(text=text, start=start, end=end, words=words,
                                confidence=float(alt.confidence) if alt.confidence > 0 else None)


def float_to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


# --------------------------------------------------------------------------- the engine


@asr_engines.register("riva")
class RivaEngine(AsrEngine):
    """`CALLSENSE_ASR_ENGINE=riva`: the pipeline's speech recognition done by a Riva server."""

    name = "riva"

    def __init__(self, settings: Settings, *, check_model: bool = True, streaming: bool = False):
        """`streaming=True`: the engine of live streams (`transcribe_stream`, `open_stream`),
        whose model is `CALLSENSE_RIVA_STREAMING_ASR_MODEL` or the server's online model."""
        self.settings = settings
        self.conn = RivaConnection(settings)
        self.boosts = boosted_words(settings)
        self.streaming = streaming
        self.model = settings.riva.streaming_asr_model if streaming else settings.riva.asr_model
        self._model_id = f"riva:{self.model or 'server-default'}"
        if check_model:
            self._check_model()

    def _check_model(self) -> None:
        """Fail at start-up on a model the server lacks; a server not up yet is no error here
        (workers may start before it: calls retry later)."""
        models = server_models(self.conn, "asr")
        if models is None:
            log.info("Riva at %s does not answer yet; its models will be checked on first use", self.conn.url)
            return
        names = [n for n, _ in models]
        setting = "CALLSENSE_RIVA_STREAMING_ASR_MODEL" if self.streaming else "CALLSENSE_RIVA_ASR_MODEL"
        if self.model:
            if self.model not in names:
                raise AsrUnavailable(f"Riva ASR at {self.conn.url} has no model '{self.model}' "
                                     f"(it serves: {', '.join(sorted(set(names))) or 'none'}); fix {setting}")
            return
        lang = self.settings.riva.language
        kind = "online" if self.streaming else "offline"
        usable = [n for n, p in models if p.get("type", "offline") == kind
                  and p.get("language_code", lang).lower() == lang.lower()]
        if models and not usable:
            langs = sorted({p.get("language_code", "?") for _, p in models})
            raise AsrUnavailable(f"Riva ASR at {self.conn.url} has no {kind} model for language {lang} "
                                 f"(its languages: {', '.join(langs)}); fix CALLSENSE_RIVA_LANGUAGE or {setting}")
        if usable:
            self._model_id = f"riva:{usable[0]}"

    @property
    def model_id(self) -> str:
        return self._model_id

    def recognition_config(self, sample_rate: int = RATE, *, word_time_offsets: bool | None = None, encoding: str = "s16le"):
        riva = riva_client()
        encodings = {"s16le": riva.AudioEncoding.LINEAR_PCM, "mulaw": riva.AudioEncoding.MULAW, "alaw": riva.AudioEncoding.ALAW}
        if encoding not in encodings:
            raise AsrUnavailable(f"unsupported stream encoding {encoding!r} (use s16le, mulaw or alaw)")
        config = riva.RecognitionConfig(
            encoding=encodings[encoding], sample_rate_hertz=sample_rate,
            language_code=self.settings.riva.language, max_alternatives=1, audio_channel_count=1,
            enable_automatic_punctuation=self.settings.riva.automatic_punctuation,
            enable_word_time_offsets=self.settings.riva.word_time_offsets if word_time_offsets is None else word_time_offsets,
            verbatim_transcripts=True, model=self.model,
        )
        add_speech_contexts(config, self.boosts)
        return config

    def recognize(self, audio: np.ndarray):
        """One offline_recognize call (with retries); returns Riva's RecognizeResponse."""
        riva = riva_client()
        service = riva.ASRService(self.conn.auth)
        config = self.recognition_config()
        pcm = float_to_pcm16(audio)

        return self.conn.call_future("ASR", self.model, lambda: service.offline_recognize(pcm, config, future=True))

    def transcribe(self, audio: np.ndarray) -> Iterator[RecognizedSegment]:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            return
        yield from segments_of(self.recognize(audio), audio.size / RATE)

    def transcribe_stream(
        self, chunks: Iterable[np.ndarray | bytes], *, interim_results: bool = True, sample_rate: int = RATE,
        encoding: str = "s16le", timeout_s: float | None = None,
    ) -> Iterator[StreamingTranscript]:
        """Live recognition: float32 chunks, or bytes in `encoding` (s16le, mulaw, alaw: the
        encodings of a live call's `CallChunk`) at `sample_rate`, in; interim and final
        results out as the server produces them; word times count from the stream's start.
        Not retried (a stream cannot be replayed): a dead server raises `RivaUnavailable`
        at once, a refused request `AsrUnavailable`."""
        yield from self.open_stream(chunks, interim_results=interim_results, sample_rate=sample_rate,
                                    encoding=encoding, timeout_s=timeout_s)

    def open_stream(
        self, chunks: Iterable[np.ndarray | bytes], *, interim_results: bool = True, sample_rate: int = RATE,
        encoding: str = "s16le", timeout_s: float | None = None,
    ) -> "RivaStream":
        """`transcribe_stream` as a handle: iterate it (in any one thread) for the results, and
        `cancel()` it from another thread. `chunks` is read by a gRPC thread."""
        riva = riva_client()
        service = riva.ASRService(self.conn.auth)
        streaming_config = riva.StreamingRecognitionConfig(
            config=self.recognition_config(sample_rate, encoding=encoding), interim_results=interim_results)
        if encoding != "s16le":
            pcm_chunks = (bytes(c) for c in chunks)
        else:
            pcm_chunks = (c if isinstance(c, (bytes, bytearray)) else float_to_pcm16(np.asarray(c, np.float32)) for c in chunks)
        requests = riva.asr.streaming_request_generator(pcm_chunks, streaming_config)
        what = f"Riva ASR streaming at {self.conn.url} (model {self.model or 'chosen by the server'})"
        # The stub rather than ASRService.streaming_response_generator: the same requests,
        # plus an optional deadline for the whole stream and a call object that can be cancelled.
        call = service.stub.StreamingRecognize(requests, metadata=self.conn.auth.get_auth_metadata(), timeout=timeout_s)
        return RivaStream(call, what)


class RivaStream:
    """One open StreamingRecognize call. Iterating it yields `StreamingTranscript`s; a failure
    raises `RivaUnavailable` (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED: the same
    audio may work on a new stream) or `AsrUnavailable` (refused), each with `grpc_code`."""

    def __init__(self, call, what: str):
        self._call = call
        self.what = what

    def cancel(self) -> None:
        """End the stream from any thread; the iteration then raises (grpc_code CANCELLED)."""
        self._call.cancel()

    def __iter__(self) -> Iterator[StreamingTranscript]:
        import grpc

        try:
            for response in self._call:
                for result in response.results:
                    if not result.alternatives:
                        continue
                    alt = result.alternatives[0]
                    words = words_of(alt)
                    yield StreamingTranscript(
                        text=alt.transcript.strip(), is_final=result.is_final, stability=float(result.stability),
                        start=words[0].start if words else 0.0, end=words[-1].end if words else float(result.audio_processed),
                        words=words, confidence=float(alt.confidence) if alt.confidence > 0 else None,
                        channel=int(result.channel_tag), audio_processed=float(result.audio_processed),
                    )
        except grpc.RpcError as e:
            code = e.code().name if e.code() else "UNKNOWN"
            details = " ".join((e.details() or code).split())
            if code in RivaConnection.RETRYABLE:
                error: AsrUnavailable = RivaUnavailable(f"{self.what} failed: {code}: {details}")
            else:
                error = AsrUnavailable(describe_refusal(self.what, code, details))
            error.grpc_code = code  # type: ignore[attr-defined]
            raise error from None
