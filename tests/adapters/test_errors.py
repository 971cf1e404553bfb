"""The engine's errors keep the wire mapping of DESIGN.md section 4 (status, OpenAI type, code)."""

from __future__ import annotations

import pytest

from adapters import (
    EmbedError,
    GenerateError,
    Internal,
    InvalidRequest,
    NotReady,
    TrinferError,
    Unavailable,
    Unsupported,
    UpstreamRateLimited,
)
from compat.openai.errors import render_error


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "code", "backend_fault"),
    [
        (NotReady, 503, "server_error", "backend_unavailable", False),
        (InvalidRequest, 400, "invalid_request_error", "invalid_value", False),
        (Unavailable, 502, "server_error", "upstream_error", True),
        (UpstreamRateLimited, 429, "rate_limit_error", "upstream_rate_limited", False),
        (Internal, 500, "server_error", "internal_error", True),
        (Unsupported, 400, "invalid_request_error", "unsupported_model", False),
    ],
)
def test_each_error_renders_as_the_design_table_says(
    cls: type[TrinferError], status: int, error_type: str, code: str, backend_fault: bool
) -> None:
    error = cls("what went wrong", param="messages[0]")
    assert (error.http_status, error.error_type, error.code, cls.backend_fault) == (
        status,
        error_type,
        code,
        backend_fault,
    )
    assert render_error(error) == (
        status,
        [],
        {"error": {"message": "what went wrong", "type": error_type, "param": "messages[0]", "code": code}},
    )


def test_an_instance_may_narrow_status_and_code_and_pass_on_retry_after() -> None:
    error = UpstreamRateLimited("slow down", retry_after=1.2)
    assert render_error(error)[:2] == (429, [("Retry-After", "2")])
    timeout = Unavailable("upstream timed out", status=504, code="upstream_timeout")
    assert render_error(timeout)[0] == 504
    assert render_error(timeout)[2]["error"]["code"] == "upstream_timeout"
    assert render_error(InvalidRequest("too long", code="context_length_exceeded"))[2]["error"]["code"] == (
        "context_length_exceeded"
    )


def test_which_errors_generation_and_embedding_may_raise() -> None:
    for cls in (NotReady, InvalidRequest, Unavailable, UpstreamRateLimited, Internal):
        assert issubclass(cls, GenerateError) and issubclass(cls, EmbedError)
    assert issubclass(UpstreamRateLimited, Unavailable)
    assert issubclass(Unsupported, EmbedError) and not issubclass(Unsupported, GenerateError)


def test_anything_else_is_a_500_that_reveals_nothing() -> None:
    status, headers, body = render_error(RuntimeError("secret path /home/x"), request_id="req_1")
    assert (status, headers) == (500, [])
    assert "secret" not in body["error"]["message"] and "req_1" in body["error"]["message"]
    assert (body["error"]["type"], body["error"]["code"]) == ("server_error", "internal_error")
