"""Build, start and stop the riva-serve gRPC server (in a thread pool sized from settings)."""

from __future__ import annotations

import hmac

import logging
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

from callsense.asr.base import AsrUnavailable
from callsense.core.settings import Settings

log = logging.getLogger("callsense.riva_serve")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class RivaServeError(RuntimeError):
    """riva-serve cannot start (port taken, bad certificate, model missing): one clear line."""


@dataclass
class TlsFiles:
    cert: Path
    key: Path


def _grpc():
    try:
        import grpc
        import riva.client.proto.riva_asr_pb2_grpc  # noqa: F401
    except ImportError:
        raise RivaServeError("riva-serve needs nvidia-riva-client and grpcio: pip install callsense[riva]") from None
    return grpc


def _api_key_interceptor(grpc, api_key: str):
    """Refuse calls without `authorization: Bearer KEY` (what riva.client sends via metadata)."""

    expected = f"Bearer {api_key}"

    def deny(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong API key (send metadata authorization: Bearer KEY)")

    def deny_stream(request_iterator, context):
        deny(None, context)
        yield  # pragma: no cover  (abort raises)

    class ApiKeyInterceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            if details.method.startswith("/grpc.health.v1.Health/"):
                return continuation(details)  # health probes carry no credentials
            sent = dict(details.invocation_metadata).get("authorization") or ""
            if hmac.compare_digest(sent.encode(), expected.encode()):
                return continuation(details)
            handler = continuation(details)
            if handler is None:
                return None
            if handler.request_streaming and handler.response_streaming:
                return grpc.stream_stream_rpc_method_handler(deny_stream)
            if handler.response_streaming:
                return grpc.unary_stream_rpc_method_handler(deny_stream)
            if handler.request_streaming:
                return grpc.stream_unary_rpc_method_handler(deny)
            return grpc.unary_unary_rpc_method_handler(deny)

    return ApiKeyInterceptor()


class RivaServer:
    """The Riva services of callsense on one port. `start()` loads the models, binds and
    serves in gRPC's threads; `stop()` ends it (health turns NOT_SERVING first)."""

    def __init__(self, settings: Settings, *, host: str | None = None, port: int | None = None,
                 workers: int | None = None, tls: TlsFiles | None = None, api_key: str | None = None):
        self.settings = settings
        self.host = host or settings.riva.serve_host
        self.port = settings.riva.serve_port if port is None else port
        self.workers = workers or settings.riva.serve_workers
        self.tls = tls
        self.api_key = api_key
        self.stopping = threading.Event()
        self._server = None
        self.asr_model_id = self.tts_model_id = ""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self) -> "RivaServer":
        grpc = _grpc()
        import riva.client.proto.health_pb2_grpc as health_grpc
        import riva.client.proto.riva_asr_pb2_grpc as asr_grpc
        import riva.client.proto.riva_nlp_pb2_grpc as nlp_grpc
        import riva.client.proto.riva_tts_pb2_grpc as tts_grpc

        from callsense.serve.riva.recognizer import EmbeddedRecognizer
        from callsense.serve.riva.services import (
            HealthService, LanguageUnderstandingService, SpeechRecognitionService, SpeechSynthesisService,
        )
        from callsense.asr.tts.base import TtsUnavailable, create_tts_engine
        from callsense.audio.vad import SileroModel
        from callsense.core.registry import UnknownBackend

        interceptors = [_api_key_interceptor(grpc, self.api_key)] if self.api_key else []
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="riva-serve"),
            interceptors=interceptors,
            options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.so_reuseport", 0)],
        )
        # Bind first: a taken port fails at once, before seconds of model loading.
        target = f"{self.address}"
        try:
            if self.tls:
                creds = grpc.ssl_server_credentials([(Path(self.tls.key).read_bytes(), Path(self.tls.cert).read_bytes())])
                bound = server.add_secure_port(target, creds)
            else:
                bound = server.add_insecure_port(target)
        except OSError as e:
            raise RivaServeError(f"cannot read the TLS files: {e}") from None
        except RuntimeError as e:
            bound, reason = 0, str(e)
        else:
            reason = "is the port already in use?"
        if not bound:
            raise RivaServeError(f"cannot listen on {target}: {reason}")

        try:
            try:
                recognizer = EmbeddedRecognizer(self.settings)
            except (AsrUnavailable, UnknownBackend) as e:
                raise RivaServeError(f"cannot load the speech recognizer: {e}") from None
            engine_name = self.settings.riva.serve_tts_engine
            if engine_name == "riva":
                raise RivaServeError("riva-serve cannot use the riva TTS engine (it would call itself): "
                                     "set CALLSENSE_RIVA_SERVE_TTS_ENGINE=espeak")
            try:
                tts = create_tts_engine(self.settings, engine_name)
            except (TtsUnavailable, UnknownBackend) as e:
                raise RivaServeError(f"cannot load the speech synthesizer: {e}") from None
            asr_grpc.add_RivaSpeechRecognitionServicer_to_server(SpeechRecognitionService(self.settings, recognizer, SileroModel()), server)
            tts_grpc.add_RivaSpeechSynthesisServicer_to_server(SpeechSynthesisService(self.settings, tts), server)
            nlp_grpc.add_RivaLanguageUnderstandingServicer_to_server(LanguageUnderstandingService(self.settings), server)
            health_grpc.add_HealthServicer_to_server(HealthService(self.stopping), server)
        except BaseException:
            server.stop(None)  # release the port
            raise
        self.port = bound
        self.asr_model_id, self.tts_model_id = recognizer.model_id, tts.model_id
        server.start()
        self._server = server
        log.debug("riva-serve listening on %s (%s, %d threads): ASR %s, TTS %s",
                 self.address, "TLS" if self.tls else "plaintext", self.workers, recognizer.model_id, tts.model_id)
        return self

    def stop(self, grace_s: float = 2.0) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.stop(grace_s).wait(grace_s + 5)
            self._server = None

    def wait(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout) if self._server is not None else True

    def __enter__(self) -> "RivaServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
