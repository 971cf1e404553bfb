"""The error table of DESIGN.md section 4, rendered as the OpenAI error bodies and statuses clients see."""

from __future__ import annotations

import pytest
from openai.types.shared import ErrorObject

from adapters.errors import (
    InvalidRequest,
    NotReady,
    TrinferError,
    Unavailable,
    UpstreamRateLimited,
    UpstreamRejected,
)
from compat.errors import (
    ERROR_TABLE,
    AuthenticationError,
    ModelNotFound,
    QueueFull,
    QueueTimeout,
    RequestTooLarge,
    RequestValidationError,
    ShuttingDown,
    UnsupportedParameter,
    render_error,
)

DESIGN_TABLE: list[tuple[type[TrinferError], int, str, str]] = [
    (RequestValidationError, 400, "invalid_request_error", "invalid_value"),
    (UnsupportedParameter, 400, "invalid_request_error", "unsupported_parameter"),
    (AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (RequestTooLarge, 413, "invalid_request_error", "request_too_large"),
    (QueueFull, 429, "rate_limit_error", "queue_full"),
    (UpstreamRateLimited, 429, "rate_limit_error", "upstream_rate_limited"),
    (Unavailable, 502, "server_error", "upstream_error"),
    (NotReady, 503, "server_error", "backend_unavailable"),
    (QueueTimeout, 503, "server_error", "queue_timeout"),
    (ShuttingDown, 503, "server_error", "server_shutting_down"),
    (InvalidRequest, 400, "invalid_request_error", "invalid_value"),
]


@pytest.mark.parametrize(
    ("cls", "status", "error_type", "code"), DESIGN_TABLE, ids=[c[0].__name__ for c in DESIGN_TABLE]
)
def test_each_error_renders_its_table_row(
    cls: type[TrinferError], status: int, error_type: str, code: str
) -> None:
    assert ERROR_TABLE[cls] == (status, error_type, code)
    rendered_status, headers, body = render_error(cls("what happened", param="p"), "req-1")
    assert (rendered_status, headers) == (status, [])
    assert body == {"error": {"message": "what happened", "type": error_type, "param": "p", "code": code}}
    ErrorObject.model_validate(body["error"])


@pytest.mark.parametrize(("retry_after", "header"), [(0.2, "1"), (1.0, "1"), (2.5, "3"), (30, "30")])
def test_retry_after_is_whole_seconds_rounded_up(retry_after: float, header: str) -> None:
    status, headers, _ = render_error(QueueFull("queue is full", retry_after=retry_after))
    assert (status, headers) == (429, [("Retry-After", header)])


def test_bugs_render_as_500_without_details() -> None:
    status, headers, body = render_error(ValueError("password=hunter2"), "req-42")
    assert (status, headers) == (500, [])
    assert body == {
        "error": {
            "message": "The server had an error while processing your request. Request id: req-42",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert "hunter2" not in str(body)


def test_narrowed_status_and_code() -> None:
    status, _, body = render_error(Unavailable("timed out", status=504, code="upstream_timeout"))
    assert status == 504
    assert body["error"]["code"] == "upstream_timeout"


def test_upstream_refusal_keeps_the_upstream_status_and_error_object() -> None:
    upstream = {"message": "max_tokens is too large", "type": "BadRequestError", "param": None, "code": 400}
    status, headers, body = render_error(UpstreamRejected(422, upstream), "req-7")
    assert (status, headers) == (422, [])
    assert body == {"error": upstream}


def test_upstream_refusal_fills_the_keys_an_upstream_left_out() -> None:
    status, _, body = render_error(UpstreamRejected(404, {"message": "no such model", "code": "model_not_found"}))
    assert status == 404
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    ErrorObject.model_validate(body["error"])
