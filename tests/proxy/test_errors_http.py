"""Every error the server can produce has OpenAI's shape, a request id, and no internals.

Before the first chunk an error is a status; after it, one SSE error event and the end of the stream.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
import trio

from adapters.types import ResolvedV2
from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon

HELLO: list[Any] = [{"role": "user", "content": "one two three four five"}]


def assert_openai_error(response: Any, status: int, error_type: str, code: str | None) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == (error_type, code)
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nope", 404, "unknown_url"),
        ("POST", "/no/such/route", 404, "unknown_url"),
        ("POST", "/", 405, "method_not_allowed"),  # GET / is the playground page
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("DELETE", "/v1/models", 405, "method_not_allowed"),
    ],
)
async def test_unknown_routes_and_methods(method: str, path: str, status: int, code: str) -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            response = await http.request(method, path)
    assert_openai_error(response, status, "invalid_request_error", code)
    if status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (b'{"model": "mock-echo", "messages": [', "invalid_json", None),
        (b"\xff\xfe", "invalid_json", None),
        (b'{"model": "mock-echo"}', "missing_field", "messages"),
        (b"[]", "invalid_type", None),
    ],
)
async def test_malformed_requests_are_400(body: bytes, code: str, param: str | None) -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            response = await http.post(
                "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
            )
    error = assert_openai_error(response, 400, "invalid_request_error", code)
    assert error["param"] == param


async def test_unknown_model_is_404_through_the_sdk() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            with pytest.raises(openai.NotFoundError) as caught:
                await client.chat.completions.create(model="gpt-nope", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert caught.value.response.headers["x-request-id"].startswith("req_")


async def test_backend_failure_before_the_first_token_is_a_502() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(fail="pre-stream")) as d, d.client() as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, stream=True)
            assert d.admission().active == 0
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"


async def test_backend_failure_mid_stream_is_one_error_event_without_finish_or_done() -> None:
    body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}
    with trio.fail_after(10):
        async with running_daemon(mock_config(fail="mid-stream", fail_after_tokens=2)) as d:
            async with d.http() as http:
                raw = await http.post("/v1/chat/completions", json=body)
            async with d.client() as client:
                stream = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, stream=True)
                received: list[str | None] = []
                with pytest.raises(openai.APIError) as caught:
                    async for chunk in stream:
                        received.append(chunk.choices[0].delta.content)
            assert d.admission().active == 0
    assert raw.status_code == 200
    events = [json.loads(e.removeprefix("data: ")) for e in raw.text.split("\n\n") if e]
    assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["", "one ", "two "]
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    assert events[-1]["error"]["code"] == "upstream_error"
    assert "[DONE]" not in raw.text
    assert received == ["", "one ", "two "]
    assert "mid-stream" in caught.value.message


async def test_a_bug_is_a_500_with_the_request_id_logged_and_nothing_leaked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(req: ResolvedV2, send: Any) -> None:
        raise ZeroDivisionError("secret internal detail")

    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            d.backends["mock"].generate_v2 = broken  # type: ignore[method-assign]
            response = await http.post("/v1/chat/completions", json={"model": MOCK_MODEL, "messages": HELLO})
    error = assert_openai_error(response, 500, "server_error", "internal_error")
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"]
    assert "secret internal detail" not in response.text
    assert "ZeroDivisionError" not in response.text
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], ZeroDivisionError)


async def test_a_bug_mid_stream_is_an_error_event_with_the_request_id() -> None:
    from adapters.types import Text

    async def breaks_after_one(req: ResolvedV2, send: Any) -> None:
        await send.send(Text("partial "))
        raise KeyError("secret internal detail")

    body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            d.backends["mock"].generate_v2 = breaks_after_one  # type: ignore[method-assign]
            raw = await http.post("/v1/chat/completions", json=body)
    events = [json.loads(e.removeprefix("data: ")) for e in raw.text.split("\n\n") if e]
    assert [e["choices"][0]["delta"]["content"] for e in events[:2]] == ["", "partial "]
    assert events[-1]["error"]["code"] == "internal_error"
    assert raw.headers["x-request-id"] in events[-1]["error"]["message"]
    assert "secret" not in raw.text
