"""The error table of DESIGN.md section 4, as data, and the one function that renders any error.

Engine errors (`adapters.errors`) and the proxy's own errors below share one base, `TrinferError`, whose
classes carry (status, OpenAI type, code). `render_error` turns any exception into (status, headers, body);
anything that is not a `TrinferError` is a bug and renders as a bare 500 with no details.
"""

from __future__ import annotations

import math
from typing import Any

from adapters.errors import TrinferError, UpstreamRejected


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


class WriteTimeout(TrinferError):
    """The client stopped reading for longer than ``write_timeout_s``; only ever sent in-band, if at all."""

    status = 408
    error_type = "server_error"
    default_code = "write_timeout"


#: The table, for documentation and tests: class -> (status, type, code).
ERROR_TABLE: dict[type[TrinferError], tuple[int, str, str | None]] = {}


def _collect(cls: type[TrinferError]) -> None:
    ERROR_TABLE[cls] = (cls.status, cls.error_type, cls.default_code)
    for sub in cls.__subclasses__():
        _collect(sub)


_collect(TrinferError)

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
    """(status, extra headers, JSON body) for any exception, per the error table."""
    headers: list[tuple[str, str]] = []
    if isinstance(exc, TrinferError):
        status = exc.http_status
        if exc.retry_after is not None:
            headers.append(("Retry-After", str(max(1, math.ceil(exc.retry_after)))))
    else:
        status = 500
    return status, headers, {"error": error_object(exc, request_id)}
