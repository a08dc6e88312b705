"""The one Riva client connection: channel, credentials, and the retry policy of every
call, shared by the ASR and TTS engines, the sentiment backend and the NLU backend.

Each caller passes its own error types (an ASR engine raises `AsrUnavailable`, the NLU
`NluUnavailable`, ...), so this module knows none of them. Transient gRPC failures
(UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) are retried with exponential backoff
(tenacity); anything else is a refusal that retrying would not change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from callsense.core.errors import TransientError
from callsense.core.settings import Settings

log = logging.getLogger("callsense.riva")

T = TypeVar("T")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RIVA_EXTRA_HINT = "pip install callsense[riva]  (nvidia-riva-client)"
RETRYABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


class RivaSetupError(RuntimeError):
    """The client cannot be set up (package missing, bad TLS file or metadata)."""


class RivaCallFailed(TransientError):
    """Default error of a call that stayed unavailable after its retries."""


def riva_modules(error: type[Exception] = RivaSetupError):
    """`riva.client`, or `error` with one line naming the extra to install."""
    try:
        import riva.client  # noqa: F401
        import riva.client.proto.riva_asr_pb2  # noqa: F401
    except ImportError:
        raise error(f"talking to Riva needs the nvidia-riva-client package: {RIVA_EXTRA_HINT}") from None
    return riva.client


def grpc_metadata(settings: Settings, error: type[Exception] = RivaSetupError) -> list[list[str]]:
    pairs: list[list[str]] = []
    if settings.riva.api_key:
        pairs.append(["authorization", f"Bearer {settings.riva.api_key}"])
    for item in settings.riva.metadata.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"bad CALLSENSE_RIVA_METADATA entry {item.strip()!r}: write key=value pairs separated by commas")
        pairs.append([key.strip().lower(), value.strip()])
    return pairs


def describe_refusal(what: str, code: str, details: str) -> str:
    if code in ("NOT_FOUND", "INVALID_ARGUMENT") and "model" in details.lower():
        return f"{what} does not serve the requested model: {details} (set the model name in the CALLSENSE_RIVA_* settings)"
    if code == "UNAUTHENTICATED" or code == "PERMISSION_DENIED":
        return f"{what} refused the credentials: {code}: {details} (CALLSENSE_RIVA_API_KEY / CALLSENSE_RIVA_METADATA)"
    if code == "UNIMPLEMENTED":
        return f"{what} does not implement this call: {details}"
    return f"{what} refused the request: {code}: {details}"


class _Transient(Exception):
    def __init__(self, code: str, details: str):
        super().__init__(f"{code}: {details}")
        self.code, self.details = code, details


def _code_and_details(exc: BaseException, timeout_s: float) -> tuple[str, str]:
    import grpc

    if isinstance(exc, grpc.FutureTimeoutError):
        return "DEADLINE_EXCEEDED", f"no answer within {timeout_s:g} s"
    code = exc.code().name if callable(getattr(exc, "code", None)) and exc.code() else "UNKNOWN"
    details = (exc.details() if callable(getattr(exc, "details", None)) else str(exc)) or code
    return code, " ".join(str(details).split())


class RivaConnection:
    """One gRPC channel to a Riva server (`riva.client.Auth`) and the retry policy of every call."""

    RETRYABLE = RETRYABLE

    def __init__(self, settings: Settings, *, setup_error: type[Exception] = RivaSetupError):
        riva = riva_modules(setup_error)
        self.settings = settings
        self.url = settings.riva.url
        use_ssl = settings.riva.use_ssl or settings.riva.ssl_cert is not None
        for field in ("ssl_cert", "ssl_client_cert", "ssl_client_key"):
            path = getattr(settings.riva, field)
            if path is not None and not Path(path).is_file():
                raise setup_error(f"CALLSENSE_RIVA_{field.upper()} points to {path}, which is not a file")
        self.auth = riva.Auth(
            ssl_root_cert=settings.riva.ssl_cert, use_ssl=use_ssl, uri=settings.riva.url,
            metadata_args=grpc_metadata(settings, setup_error),
            ssl_client_cert=settings.riva.ssl_client_cert, ssl_client_key=settings.riva.ssl_client_key,
            options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     # A restarted server is reached within seconds (gRPC's default backoff
                     # grows to 2 minutes, longer than a live stream may wait to reopen).
                     ("grpc.initial_reconnect_backoff_ms", 500),
                     ("grpc.max_reconnect_backoff_ms", 5000)],
        )

    def close(self) -> None:
        self.auth.channel.close()

    def call(
        self, service: str, model: str, fn: Callable[[float], T], *,
        unavailable: type[Exception] = RivaCallFailed, permanent: type[Exception] = RivaSetupError,
        retries: int | None = None,
    ) -> T:
        """Run `fn(timeout_s)`; retry transient gRPC failures with exponential backoff, then
        raise `unavailable` (transient) or `permanent` with one line naming URL and model."""
        import grpc

        retries = self.settings.riva.retries if retries is None else retries
        timeout_s = self.settings.riva.timeout_s
        what = f"Riva {service} at {self.url} (model {model or 'chosen by the server'})"

        def attempt() -> T:
            try:
                return fn(timeout_s)
            except (grpc.FutureTimeoutError, grpc.RpcError) as e:
                code, details = _code_and_details(e, timeout_s)
                if code not in RETRYABLE:
                    raise permanent(describe_refusal(what, code, details)) from None
                raise _Transient(code, details) from None

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            log.warning("%s: %s (%s); retry %d of %d in %.1f s", what, exc.code, exc.details,
                        state.attempt_number, retries, state.next_action.sleep)

        retrying = Retrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential(multiplier=self.settings.riva.retry_backoff_s, max=10.0),
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            before_sleep=before_sleep, reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as last:
            hint = "; is the server running? (CALLSENSE_RIVA_URL)" if last.code == "UNAVAILABLE" else ""
            tries = f"{retries + 1} tries" if retries else "1 try"
            raise unavailable(f"{what} is unavailable after {tries}: {last.code}: {last.details}{hint}") from None

    def call_future(self, service: str, model: str, start: Callable[[], Any], **kw) -> Any:
        """`call` for the client's `future=True` methods: wait for the result within the
        deadline and cancel the request when the wait fails."""
        def once(timeout: float):
            future = start()
            try:
                return future.result(timeout=timeout)
            except BaseException:
                future.cancel()
                raise

        return self.call(service, model, once, **kw)
