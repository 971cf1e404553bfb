"""Every error as Anthropic's error body and status (DESIGN.md section 8), judged by the SDK's error model."""

from __future__ import annotations

import math

import pytest

from adapters.errors import (
    Internal,
    InvalidRequest,
    NotReady,
    TrinferError,
    Unavailable,
    Unsupported,
    UpstreamRateLimited,
)
from compat.anthropic.errors import error_type, render_anthropic_error
from compat.errors import (
    AuthenticationError,
    MethodNotAllowed,
    ModelNotFound,
    QueueFull,
    QueueTimeout,
    RequestTooLarge,
    RequestValidationError,
    ShuttingDown,
)

from .anthropic_shapes import sdk_error

# (error, status, Anthropic type)
CASES: list[tuple[TrinferError, int, str]] = [
    (RequestValidationError("Invalid value for 'messages': bad", param="messages"), 400, "invalid_request_error"),
    (InvalidRequest("too long"), 400, "invalid_request_error"),
    (Unsupported("cannot count"), 400, "invalid_request_error"),
    (AuthenticationError("no key"), 401, "authentication_error"),
    (TrinferError("forbidden", status=403), 403, "permission_error"),
    (ModelNotFound("no such model"), 404, "not_found_error"),
    (MethodNotAllowed("GET"), 405, "invalid_request_error"),
    (RequestTooLarge("too big"), 413, "request_too_large"),
    (QueueFull("full", retry_after=1), 429, "rate_limit_error"),
    (UpstreamRateLimited("slow down", retry_after=2.5), 429, "rate_limit_error"),
    (Internal("bug in backend"), 500, "api_error"),
    (Unavailable("upstream broke"), 502, "api_error"),
    (NotReady("loading"), 529, "overloaded_error"),
    (Unavailable("no backend ready", status=503), 529, "overloaded_error"),
    (QueueTimeout("waited too long"), 529, "overloaded_error"),
    (ShuttingDown("draining"), 529, "overloaded_error"),
    (Unavailable("timed out", status=504), 504, "timeout_error"),
]


@pytest.mark.parametrize(("exc", "status", "kind"), CASES, ids=[type(c[0]).__name__ + str(c[1]) for c in CASES])
def test_error_table(exc: TrinferError, status: int, kind: str) -> None:
    got_status, headers, body = render_anthropic_error(exc, "req_1")
    assert got_status == status
    assert body == {"type": "error", "error": {"type": kind, "message": exc.message}}
    if kind != "request_too_large":  # Anthropic documents this type; the SDK's union does not list it
        assert sdk_error(body).error.type == kind
    if exc.retry_after is not None:
        assert headers == [("Retry-After", str(math.ceil(exc.retry_after)))]
    else:
        assert headers == []


def test_the_field_path_leads_a_message_that_does_not_quote_it() -> None:
    _, _, body = render_anthropic_error(Unsupported("Server tools are not run here.", param="tools[0].type"))
    assert body["error"]["message"] == "tools[0].type: Server tools are not run here."
    quoted = RequestValidationError("Missing required parameter: 'max_tokens'.", param="max_tokens")
    assert render_anthropic_error(quoted)[2]["error"]["message"] == "Missing required parameter: 'max_tokens'."


def test_a_bug_reveals_only_the_request_id() -> None:
    status, headers, body = render_anthropic_error(ValueError("secret path /etc/x"), "req_42")
    assert (status, headers) == (500, [])
    assert body["error"]["type"] == "api_error"
    assert "req_42" in body["error"]["message"] and "secret" not in body["error"]["message"]
    assert "unknown" in render_anthropic_error(ValueError("x"))[2]["error"]["message"]


@pytest.mark.parametrize(("status", "kind"), [(418, "invalid_request_error"), (501, "api_error")])
def test_other_statuses(status: int, kind: str) -> None:
    assert error_type(status) == kind
