"""A small JSON-over-HTTP client for the fulfillment adapters (standard library only).

Every failure becomes an `HttpFailure` whose `kind` says what happened (timeout,
connection, status, bad_response), so that adapters can turn it into a clear apology.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

MAX_BODY_BYTES = 4_000_000


class HttpFailure(Exception):
    def __init__(self, kind: str, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.kind = kind  # timeout | connection | status | bad_response
        self.status = status
        self.body = body


@dataclass
class JsonResponse:
    status: int
    data: Any
    elapsed_s: float


def get_json(base_url: str, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             *, timeout: float) -> JsonResponse:
    """GET base_url + path?params and parse the JSON body. Non-2xx statuses raise
    HttpFailure("status") with the parsed error body (when it is JSON) in `.body`."""
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    url = base_url.rstrip("/") + path + (f"?{query}" if query else "")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "callsense-assistant",
                                                   **(headers or {})})
    host = urllib.parse.urlsplit(url).netloc
    started = time.perf_counter()
    deadline = started + timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = _read(response, deadline, host, timeout)
            status = response.status
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read(MAX_BODY_BYTES) or b"null")
        except (ValueError, OSError):
            body = None
        raise HttpFailure("status", f"{host} answered HTTP {e.code}", status=e.code, body=body) from None
    except (TimeoutError, socket.timeout):
        raise HttpFailure("timeout", f"{host} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise HttpFailure("timeout", f"{host} did not answer within {timeout:g} s") from None
        raise HttpFailure("connection", f"cannot reach {host}: {reason}") from None
    except (ConnectionError, OSError) as e:
        raise HttpFailure("connection", f"cannot reach {host}: {e}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise HttpFailure("bad_response", f"{host} answered something that is not JSON", status=status) from None
    return JsonResponse(status=status, data=data, elapsed_s=time.perf_counter() - started)


def _read(response, deadline: float, host: str, timeout: float) -> bytes:
    """Read the body, keeping to the overall deadline (a server that trickles bytes
    would otherwise reset the socket timeout on every chunk)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.perf_counter() > deadline:
            raise TimeoutError
        chunk = response.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HttpFailure("bad_response", f"{host} sent more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
