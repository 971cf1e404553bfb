"""The one error path of the daemon: any exception -> (status, headers, error body in the route's dialect).

quart/werkzeug's own HTTP errors (unknown route, wrong method, body too large, body timeout, bad request) are
first translated into `TrinferError`s through a table, then everything goes through `ErrorRenderers.render`,
which picks the dialect's error body by path (OpenAI's `compat.openai.errors.render_error` unless a route
prefix has its own). The error classes themselves are in `compat.errors`. Anything that is not a
`TrinferError` is a bug: it is logged here, with its traceback and the request id, and the client sees only a
500 carrying that id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from compat.errors import (
    BodyTimeout,
    HTTPProblem,
    MethodNotAllowed,
    RequestTooLarge,
    RequestValidationError,
    RouteNotFound,
)
from compat.openai.errors import render_error

from .logs import get_logger

log = get_logger("errors")


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


#: A dialect's error body: any exception -> (status, extra headers, JSON body). Sans-IO, in ``compat/<dialect>/``;
#: `compat.openai.errors.render_error` is OpenAI's.
ErrorBody = Callable[[BaseException, str | None], tuple[int, list[tuple[str, str]], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class RenderedError:
    """An error response, ready to send: status, headers (Content-Type included) and the JSON body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers`` as ASGI and h11 take them: lowercase names, latin-1 bytes."""
        return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]


class ErrorRenderers:
    """Which dialect renders the errors of a path: the longest route prefix that matches, else ``default``.

    A prefix matches the path itself and the paths below it (``/v1/messages`` matches ``/v1/messages`` and
    ``/v1/messages/count_tokens``, not ``/v1/messagesx``). Every error response of the daemon is rendered
    here - the middleware's early refusals (401, 413, 503 draining) and escaped bugs, the apps' error handler,
    refused WebSocket upgrades - so a route answers in its own dialect whatever refused it.
    """

    def __init__(
        self, default: ErrorBody = render_error, by_prefix: Mapping[str, ErrorBody] | None = None
    ) -> None:
        self._default = default
        self._by_prefix = sorted((by_prefix or {}).items(), key=lambda item: len(item[0]), reverse=True)

    def body_for(self, path: str) -> ErrorBody:
        for prefix, body in self._by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return body
        return self._default

    def render(
        self, exc: BaseException, request_id: str, path: str, *, allow: list[str] | None = None
    ) -> RenderedError:
        """The response for ``exc`` on ``path``; an exception that is not a `TrinferError` (a bug) is logged
        here with its traceback and the request id, and its body reveals nothing but that id."""
        if not isinstance(exc, TrinferError):
            log.error("internal error in request %s", request_id, exc_info=exc)
        status, headers, body = self.body_for(path)(exc, request_id)
        if allow:
            headers.append(("Allow", ", ".join(allow)))
        headers.append(("Content-Type", "application/json"))
        return RenderedError(status, headers, encode_json(body))


def encode_json(body: Any) -> bytes:
    return _encode(body).encode("utf-8")


#: ``json.dumps`` with these options makes a new encoder per call; this one is made once.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def log_level_for(status: int, path: str) -> int:
    """The level of a request's log line: a 5xx is WARNING (INFO for a ``/ready`` probe), anything else INFO.

    Never ERROR: every 5xx that reaches a line is an expected refusal (loading, draining, queue timeout, no
    backend), except a bug, which `ErrorRenderers.render` has already logged at ERROR with its traceback and
    request id.
    """
    if status >= 500 and path != "/ready":
        return logging.WARNING
    return logging.INFO
