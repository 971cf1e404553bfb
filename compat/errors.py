"""The proxy's wire errors, and the table of DESIGN.md section 4 computed from them when asked.

Every error a client can see is a `TrinferError` (``adapters.errors``), whose class carries its wire mapping as
data: HTTP status, error ``type`` and ``code``. The engine's errors live in ``adapters/`` (backends raise
them); the ones the proxy and the dialects raise themselves live here, and nowhere else. These are
dialect-neutral: each dialect renders them in its own body (``compat.openai.errors`` for OpenAI routes).

`error_table` walks the class tree each time it is called, so a class defined in any module imported by then
(a backend's own narrowing such as ``UnusableOutput``) is in it; nothing is snapshotted at import.
"""

from __future__ import annotations

from typing import NamedTuple

from adapters.errors import TrinferError


class RequestValidationError(TrinferError):
    """The request body is not valid OpenAI JSON; ``param`` names the field path (``messages[2].content``)."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


class UnsupportedParameter(RequestValidationError):
    """A documented OpenAI parameter value that trinfer does not implement (e.g. ``n > 1``)."""

    default_code = "unsupported_parameter"


class AuthenticationError(TrinferError):
    status = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class ModelNotFound(TrinferError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class RouteNotFound(TrinferError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "unknown_url"


class MethodNotAllowed(TrinferError):
    status = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTooLarge(TrinferError):
    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class QueueFull(TrinferError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "queue_full"


class QueueTimeout(TrinferError):
    status = 503
    error_type = "server_error"
    default_code = "queue_timeout"


class ShuttingDown(TrinferError):
    status = 503
    error_type = "server_error"
    default_code = "server_shutting_down"


class BodyTimeout(TrinferError):
    """The client took longer than the body timeout to send its request body."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class HTTPProblem(TrinferError):
    """Any other HTTP-level refusal from the web framework, keeping its status (given per instance)."""

    error_type = "invalid_request_error"
    default_code = None


class TooManyRequests(TrinferError):
    """The WebSocket already runs its configured number of requests; this one is refused, the socket stays open."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "too_many_requests"


class RequestCancelled(TrinferError):
    """The terminal frame of a request the client cancelled (OpenAI has no code for it; see docs/websocket.md)."""

    status = 499
    error_type = "invalid_request_error"
    default_code = "request_cancelled"


class ErrorRow(NamedTuple):
    """One row of the error table: what a class becomes on the wire unless an instance narrows it."""

    status: int
    error_type: str
    code: str | None


def error_table() -> dict[type[TrinferError], ErrorRow]:
    """Every `TrinferError` class defined so far -> its row, computed now from the classes themselves."""
    table: dict[type[TrinferError], ErrorRow] = {}
    pending: list[type[TrinferError]] = [TrinferError]
    while pending:
        cls = pending.pop()
        if cls not in table:
            table[cls] = ErrorRow(cls.status, cls.error_type, cls.default_code)
            pending.extend(cls.__subclasses__())
    return table
