"""Any error as Anthropic's error body, ``{"type": "error", "error": {"type", "message"}}``, with its status.

The engine's and the proxy's errors carry OpenAI's mapping (`compat.errors`); this module re-reads the same
errors in Anthropic's vocabulary (DESIGN.md section 8), by HTTP status, so the anthropic SDK raises its own
exception class for each: 400 ``invalid_request_error``, 401 ``authentication_error``, 403
``permission_error``, 404 ``not_found_error``, 413 ``request_too_large``, 429 ``rate_limit_error``, 5xx
``api_error``, 504 ``timeout_error``. Every 503 (no ready backend, a queue wait that timed out, a server that is
draining) is sent as 529 ``overloaded_error``: it is the status Anthropic itself uses when it cannot take a
request now, and the SDKs retry it, honouring ``retry-after``. Bugs reveal only the request id.

Anthropic's body has no ``param`` field, so a message that does not already quote the field at fault starts with
its path (``tools[0].type: ...``), as Anthropic's own messages do.
"""

from __future__ import annotations

from typing import Any

from adapters.errors import TrinferError

from ..errors import INTERNAL_MESSAGE, render_error

#: Anthropic's status for "cannot take this request now" (sent instead of 503).
OVERLOADED_STATUS = 529

_TYPES_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_status(status: int) -> int:
    """The status an Anthropic client gets for an error trinfer would answer with ``status``."""
    return OVERLOADED_STATUS if status == 503 else status


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for a (mapped) status: other 4xx are invalid requests, 5xx API errors."""
    if status in _TYPES_BY_STATUS:
        return _TYPES_BY_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The whole Anthropic error body for ``exc`` (also the data of an in-band ``event: error``)."""
    if isinstance(exc, TrinferError):
        status, message = error_status(exc.http_status), exc.message
        if exc.param and f"'{exc.param}'" not in message:
            message = f"{exc.param}: {message}"  # the body has no param field: the path leads, as Anthropic's do
    else:
        status, message = 500, INTERNAL_MESSAGE.format(request_id=request_id or "unknown")
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def render_anthropic_error(
    exc: BaseException, request_id: str | None = None
) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    """(status, extra headers, JSON body) for any exception, in Anthropic's shape; ``Retry-After`` is kept."""
    status, headers, _ = render_error(exc, request_id)
    return error_status(status), headers, error_body(exc, request_id)
