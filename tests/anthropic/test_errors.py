"""Every row of the anthropic error table, driven by what a real upstream sends, plus the mid-stream rule.

Each case names the table row it must hit; `test_every_table_row_has_a_case` keeps the cases and the table in
step, so adding a row without a test fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

import anthropic
import httpx2
import pytest
import trio

from adapters.anthropic_backend import AnthropicBackend
from adapters.anthropic_backend.errors import (
    ERROR_TABLE,
    error_type_class,
    retry_after_seconds,
    translate_exception,
)
from adapters.errors import Internal, InvalidRequest, TrinferError, Unavailable, UpstreamRateLimited
from adapters.types import MessageV2, ResolvedV2, Role, Text, TextBlock
from compat.openai.errors import render_error

from .conftest import KEY_ENV, collect_failure, make_backend
from .fake_upstream import (
    DEFAULT_KEY,
    Drop,
    FakeMessagesAPI,
    Hang,
    Reply,
    error_event,
    error_reply,
    message_start,
    stream_reply,
    text_block,
)

REQ = ResolvedV2(model="claude", messages=(MessageV2(Role.USER, (TextBlock("hi"),)),))


def decided_by(exc: BaseException) -> type[Exception]:
    """The ERROR_TABLE row (its class) that translated ``exc``: the first row that matches."""
    assert isinstance(exc, Exception)
    cls = error_type_class(exc)
    return next(row for row, _ in ERROR_TABLE if issubclass(cls, row))


@dataclass(frozen=True)
class Case:
    row: type[Exception]
    reply: Reply
    error: type[TrinferError]
    status: int
    code: str
    in_message: str = ""


def partial_then(*failure: object) -> Reply:
    """A stream that sends one text delta, then fails as given."""
    return stream_reply(message_start(), text_block(0, ["partial"])[:3], *failure)  # type: ignore[arg-type]


HTTP_CASES = {
    "400": Case(
        anthropic.BadRequestError,
        error_reply(400, "invalid_request_error", "temperature: range: 0..1"),
        InvalidRequest,
        400,
        "invalid_value",
        "temperature: range: 0..1",
    ),
    "401": Case(
        anthropic.AuthenticationError,
        error_reply(401, "authentication_error", "invalid x-api-key"),
        Unavailable,
        502,
        "upstream_error",
        "upstream API key was refused",
    ),
    "403": Case(
        anthropic.PermissionDeniedError,
        error_reply(403, "permission_error", "key has no access"),
        Unavailable,
        502,
        "upstream_error",
        "upstream API key was refused",
    ),
    "404": Case(
        anthropic.NotFoundError,
        error_reply(404, "not_found_error", "model: claude-nope"),
        Unavailable,
        502,
        "upstream_error",
        "model: claude-nope",
    ),
    "408": Case(
        anthropic.RequestTimeoutError,
        error_reply(408, "timeout_error", "slow body"),
        Unavailable,
        504,
        "upstream_error",
    ),
    "413": Case(
        anthropic.ContentTooLargeError,
        error_reply(413, "request_too_large", "Request exceeds the maximum allowed number of bytes."),
        InvalidRequest,
        413,
        "request_too_large",
    ),
    "422": Case(
        anthropic.UnprocessableEntityError,
        error_reply(422, "invalid_request_error", "bad shape"),
        InvalidRequest,
        400,
        "invalid_value",
        "bad shape",
    ),
    "429": Case(
        anthropic.RateLimitError,
        error_reply(
            429, "rate_limit_error", "Number of requests has exceeded your rate limit", [("retry-after", "17")]
        ),
        UpstreamRateLimited,
        429,
        "upstream_rate_limited",
    ),
    "500": Case(
        anthropic.InternalServerError, error_reply(500, "api_error", "boom"), Unavailable, 502, "upstream_error"
    ),
    "503": Case(
        anthropic.ServiceUnavailableError,
        error_reply(503, "api_error", "down"),
        Unavailable,
        503,
        "backend_unavailable",
    ),
    "504": Case(
        anthropic.GatewayTimeoutError, error_reply(504, "api_error", "gw"), Unavailable, 504, "upstream_error"
    ),
    "529": Case(
        anthropic.OverloadedError,
        error_reply(529, "overloaded_error", "Overloaded"),
        Unavailable,
        503,
        "backend_unavailable",
        "overloaded",
    ),
    "418-unknown-status": Case(
        anthropic.APIStatusError,
        error_reply(418, "teapot_error", "short and stout"),
        Unavailable,
        502,
        "upstream_error",
    ),
}

MID_STREAM_CASES = {
    "overloaded": Case(
        anthropic.OverloadedError,
        partial_then(error_event("overloaded_error", "Overloaded")),
        Unavailable,
        503,
        "backend_unavailable",
    ),
    "rate-limited": Case(
        anthropic.RateLimitError,
        partial_then(error_event("rate_limit_error", "slow down")),
        UpstreamRateLimited,
        429,
        "upstream_rate_limited",
    ),
    "api-error": Case(
        anthropic.InternalServerError,
        partial_then(error_event("api_error", "oops")),
        Unavailable,
        502,
        "upstream_error",
    ),
    "invalid-request": Case(
        anthropic.BadRequestError,
        partial_then(error_event("invalid_request_error", "nope")),
        InvalidRequest,
        400,
        "invalid_value",
    ),
    "auth": Case(
        anthropic.AuthenticationError,
        partial_then(error_event("authentication_error", "revoked")),
        Unavailable,
        502,
        "upstream_error",
        "upstream API key was refused",
    ),
    "timeout": Case(
        anthropic.GatewayTimeoutError,
        partial_then(error_event("timeout_error", "took too long")),
        Unavailable,
        504,
        "upstream_error",
    ),
    "unknown-type": Case(
        anthropic.APIStatusError,
        partial_then(error_event("brand_new_error", "?")),
        Unavailable,
        502,
        "upstream_error",
    ),
    "connection-dropped": Case(httpx2.HTTPError, partial_then(Drop()), Unavailable, 502, "upstream_error"),
}


@pytest.mark.parametrize("case", HTTP_CASES.values(), ids=HTTP_CASES.keys())
async def test_upstream_http_errors_before_the_first_event(
    backend: AnthropicBackend, fake: FakeMessagesAPI, case: Case
) -> None:
    fake.reply(case.reply)
    events, error = await collect_failure(backend, REQ)
    assert events == []
    assert type(error) is case.error
    assert isinstance(error, TrinferError)
    assert (error.http_status, error.code) == (case.status, case.code)
    assert case.in_message in error.message
    assert decided_by(error.__cause__) is case.row  # type: ignore[arg-type]
    assert DEFAULT_KEY not in error.message


@pytest.mark.parametrize("case", MID_STREAM_CASES.values(), ids=MID_STREAM_CASES.keys())
async def test_failures_after_the_first_event_end_the_stream_without_done(
    backend: AnthropicBackend, fake: FakeMessagesAPI, case: Case
) -> None:
    fake.reply(case.reply)
    events, error = await collect_failure(backend, REQ)
    assert events == [Text("partial")]  # tokens already sent stay sent, and no Done follows
    assert type(error) is case.error
    assert isinstance(error, TrinferError)
    assert (error.http_status, error.code) == (case.status, case.code)
    assert case.in_message in error.message
    assert decided_by(error.__cause__) is case.row  # type: ignore[arg-type]


async def test_rate_limit_passes_retry_after_on_to_the_client(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(HTTP_CASES["429"].reply)
    _, error = await collect_failure(backend, REQ)
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after == 17.0
    status, headers, body = render_error(error)
    assert status == 429
    assert ("Retry-After", "17") in headers
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "upstream_rate_limited"


async def test_a_refused_key_is_reported_without_the_key(
    fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_key = "sk-ant-wrong-key-9876543210"
    monkeypatch.setenv(KEY_ENV, wrong_key)
    backend = make_backend(fake)
    await backend.boot()
    try:
        _, error = await collect_failure(backend, REQ)
    finally:
        await backend.stop(5)
    assert fake.requests[-1].headers.get("authorization") == f"Bearer {wrong_key}"
    assert isinstance(error, Unavailable)
    assert error.http_status == 502
    assert "upstream API key was refused" in error.message
    rendered = repr(render_error(error))
    assert wrong_key not in rendered
    assert DEFAULT_KEY not in rendered


async def test_unreachable_upstream_is_a_502(fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = listener.getsockname()[1]
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake, base_url=f"http://127.0.0.1:{port}")
    await backend.boot()
    try:
        events, error = await collect_failure(backend, REQ)
    finally:
        await backend.stop(5)
        listener.close()
    assert events == []
    assert isinstance(error, Unavailable)
    assert (error.http_status, error.code) == (502, "upstream_error")
    assert decided_by(error.__cause__) is anthropic.APIConnectionError  # type: ignore[arg-type]


def slow_real_io_down(clock: trio.testing.MockClock) -> None:
    """Jump virtual time only after 50 ms of real idleness, not at once.

    These tests mix virtual time with real sockets and a worker thread (the SDK resolves its platform headers
    in one on a client's first request). With the default threshold of 0 the clock jumps to the test's guard
    deadline while that thread runs; 50 ms of real time is ample for loopback I/O and the thread, and the
    20-second timeout under test still passes in virtual time.
    """
    clock.autojump_threshold = 0.05


async def test_no_answer_within_timeout_is_a_504(
    fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    slow_real_io_down(autojump_clock)
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake, timeout_s=20)
    await backend.boot()
    fake.reply(Reply(hang_before_headers=True))
    try:
        events, error = await collect_failure(backend, REQ, guard_s=60)
        with trio.fail_after(60):
            await fake.wait_disconnected()  # the timed-out request's connection was closed
    finally:
        await backend.stop(5)
    assert events == []
    assert isinstance(error, Unavailable)
    assert (error.http_status, error.code) == (504, "upstream_error")
    assert decided_by(error.__cause__) is anthropic.APITimeoutError  # type: ignore[arg-type]


async def test_upstream_silent_mid_stream_for_longer_than_timeout_is_a_504(
    fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    slow_real_io_down(autojump_clock)
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake, timeout_s=20)
    await backend.boot()
    fake.reply(partial_then(Hang()))
    try:
        events, error = await collect_failure(backend, REQ, guard_s=60)
        with trio.fail_after(60):
            await fake.wait_disconnected()
    finally:
        await backend.stop(5)
    assert events == [Text("partial")]
    assert isinstance(error, Unavailable)
    assert (error.http_status, error.code) == (504, "upstream_error")
    assert decided_by(error.__cause__) is httpx2.TimeoutException  # type: ignore[arg-type]


# --- rows no fake upstream can reach, checked directly ----------------------------------------------------


def _response(status: int = 200) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request("POST", "https://api.anthropic.com/v1/messages"))


def test_unreadable_response_row() -> None:
    exc = anthropic.APIResponseValidationError(_response(), body={"unexpected": True})
    error = translate_exception(exc)
    assert isinstance(error, Unavailable)
    assert error.http_status == 502
    assert decided_by(exc) is anthropic.APIResponseValidationError


def test_other_sdk_errors_are_internal() -> None:
    exc = anthropic.AnthropicError("client misconfigured")
    error = translate_exception(exc)
    assert isinstance(error, Internal)
    assert error.http_status == 500
    assert decided_by(exc) is anthropic.AnthropicError


def test_exceptions_that_are_not_the_libraries_are_not_translated() -> None:
    assert translate_exception(ValueError("ours")) is None
    assert translate_exception(trio.BrokenResourceError()) is None


def test_every_table_row_has_a_case() -> None:
    direct = {anthropic.APIResponseValidationError, anthropic.AnthropicError}
    transport = {anthropic.APIConnectionError, anthropic.APITimeoutError, httpx2.TimeoutException}
    covered = (
        {c.row for c in HTTP_CASES.values()} | {c.row for c in MID_STREAM_CASES.values()} | direct | transport
    )
    assert {row for row, _ in ERROR_TABLE} == covered


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "30"}, 30.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "2500", "retry-after": "9"}, 2.5),
        ({"retry-after-ms": "later", "retry-after": "4"}, 4.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(httpx2.Headers(headers), now=now) == expected
