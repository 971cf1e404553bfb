"""The OpenAI error body: any exception -> (status, headers, ``{"error": {message, type, param, code}}``).

The status, ``type`` and ``code`` come from the exception's class (see ``compat.errors``); an instance may
narrow them. Anything that is not a `TrinferError` is a bug: it renders as a bare 500 ``internal_error`` whose
message reveals only the request id. SSE error events and WebSocket error frames carry the same object.
"""

from __future__ import annotations

import math
from typing import Any

from adapters.errors import TrinferError, UpstreamRejected

INTERNAL_MESSAGE = "The server had an error while processing your request. Request id: {request_id}"


def error_object(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The OpenAI error object (the value of ``"error"``) for any exception. Bugs reveal nothing.

    An upstream server's refusal (`UpstreamRejected`) is passed through as the upstream wrote it.
    """
    if isinstance(exc, UpstreamRejected):
        return dict(exc.error)
    if isinstance(exc, TrinferError):
        return {"message": exc.message, "type": exc.error_type, "param": exc.param, "code": exc.code}
    return {
        "message": INTERNAL_MESSAGE.format(request_id=request_id or "unknown"),
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }


def render_error(
    exc: BaseException, request_id: str | None = None
) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    """(status, extra headers, JSON body) for any exception; ``Retry-After`` is whole seconds, rounded up."""
    headers: list[tuple[str, str]] = []
    if isinstance(exc, TrinferError):
        status = exc.http_status
        if exc.retry_after is not None:
            headers.append(("Retry-After", str(max(1, math.ceil(exc.retry_after)))))
    else:
        status = 500
    return status, headers, {"error": error_object(exc, request_id)}
