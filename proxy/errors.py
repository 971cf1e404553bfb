"""The one error path of the daemon: any exception -> (status, headers, OpenAI error body).

quart/werkzeug's own HTTP errors (unknown route, wrong method, body too large, body timeout, bad request) are
first translated into `TrinferError`s through a table, then everything goes through
`compat.errors.render_error`. Anything that is not a `TrinferError` is a bug: it is logged here, with its
traceback and the request id, and the client sees only a 500 carrying that id.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    RequestTimeout,
)
from werkzeug.exceptions import (
    MethodNotAllowed as WerkzeugMethodNotAllowed,
)

from adapters.errors import TrinferError
from compat.anthropic.errors import render_anthropic_error
from compat.errors import (
    MethodNotAllowed,
    RequestTooLarge,
    RequestValidationError,
    RouteNotFound,
    render_error,
)

from .logs import get_logger

#: The Anthropic dialect's route prefix: its errors use Anthropic's body and ``x-api-key`` is accepted there.
ANTHROPIC_PREFIX = "/v1/messages"


def is_anthropic_path(path: str) -> bool:
    return path == ANTHROPIC_PREFIX or path.startswith(ANTHROPIC_PREFIX + "/")

log = get_logger("errors")


class BodyTimeout(TrinferError):
    """The client took longer than the body timeout to send its request body."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class HTTPProblem(TrinferError):
    """Any other HTTP-level refusal from the framework, keeping its status."""

    error_type = "invalid_request_error"
    default_code = None


def translate_http_exception(exc: HTTPException, method: str, path: str, max_body_bytes: int) -> TrinferError:
    """The `TrinferError` for one of quart/werkzeug's HTTP exceptions."""
    if isinstance(exc, NotFound):
        return RouteNotFound(f"Invalid URL ({method} {path})")
    if isinstance(exc, WerkzeugMethodNotAllowed):
        return MethodNotAllowed(f"Method {method} is not allowed for {path}")
    if isinstance(exc, RequestEntityTooLarge):
        return too_large(max_body_bytes)
    if isinstance(exc, RequestTimeout):
        return BodyTimeout("The request body was not received in time")
    if isinstance(exc, BadRequest):
        return RequestValidationError(f"Bad request: {exc.description}")
    return HTTPProblem(f"{exc.name}", status=exc.code or 500)


def too_large(max_body_bytes: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than the limit of {max_body_bytes} bytes")


def render(
    exc: BaseException, request_id: str, *, allow: list[str] | None = None, path: str = ""
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, JSON bytes) for ``exc`` in the dialect of ``path`` (Anthropic's body under
    ``/v1/messages``, OpenAI's elsewhere); unexpected exceptions are logged with the request id."""
    if not isinstance(exc, TrinferError):
        log.error("internal error in request %s", request_id, exc_info=exc)
    renderer = render_anthropic_error if is_anthropic_path(path) else render_error
    status, headers, body = renderer(exc, request_id)
    if allow:
        headers.append(("Allow", ", ".join(allow)))
    headers.append(("Content-Type", "application/json"))
    return status, headers, encode_json(body)


def encode_json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def log_level_for(status: int, path: str) -> int:
    """The level of a request's log line: a 5xx is WARNING (INFO for a ``/ready`` probe), anything else INFO.

    Never ERROR: every 5xx that reaches a line is an expected refusal (loading, draining, queue timeout, no
    backend), except a bug, which `render` has already logged at ERROR with its traceback and request id.
    """
    if status >= 500 and path != "/ready":
        return logging.WARNING
    return logging.INFO
