"""Every error a Messages client can meet, through the real anthropic SDK: Anthropic's body and status, so the
SDK raises its own exception class; mid-stream failures end the stream with one ``event: error``."""

from __future__ import annotations

import json
import logging
import types
from typing import Any

import anthropic
import pytest
import trio

from adapters.backend import Backend
from adapters.types import ResolvedV2, Text
from tests.daemon_harness import MOCK_MODEL, keyed_config, mock_config, running_daemon, wait_until

from .sdk import async_client, sse_events

HELLO: list[Any] = [{"role": "user", "content": "one two three four five six"}]


def assert_anthropic_error(exc: anthropic.APIStatusError, status: int, error_type: str) -> str:
    """The status and Anthropic error body of ``exc``; returns the message."""
    assert exc.status_code == status
    body = exc.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert set(body["error"]) == {"type", "message"}
    message: str = body["error"]["message"]
    return message


async def test_invalid_request_is_bad_request_naming_the_field() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client, d.http() as http:
            with pytest.raises(anthropic.BadRequestError) as zero:
                await client.messages.create(model=MOCK_MODEL, max_tokens=0, messages=HELLO)
            with pytest.raises(anthropic.BadRequestError) as server_tool:
                await client.messages.create(
                    model=MOCK_MODEL,
                    max_tokens=10,
                    messages=HELLO,
                    tools=[{"type": "web_search_20250305", "name": "web_search"}],
                )
            missing = await http.post("/v1/messages", json={"model": MOCK_MODEL, "messages": HELLO})
            not_json = await http.post(
                "/v1/messages", content=b"{nope", headers={"content-type": "application/json"}
            )
    assert "max_tokens" in assert_anthropic_error(zero.value, 400, "invalid_request_error")
    assert assert_anthropic_error(server_tool.value, 400, "invalid_request_error").startswith(
        "tools[0].type: Tool type 'web_search_20250305' is an Anthropic server tool"
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Missing required parameter: 'max_tokens'.",
    }
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == "invalid_request_error"


async def test_malformed_tool_schema_is_bad_request_naming_its_place(caplog: pytest.LogCaptureFixture) -> None:
    """A tool's ``input_schema`` (and a structured-output schema) is checked for shape before any backend walks
    it: 400 ``invalid_request_error`` whose message names the schema path, and nothing logged as an error."""
    city = {"type": "object", "properties": {"city": {"type": "text"}}}
    output = {"output_format": {"type": "json_schema", "schema": {"type": "object", "required": 1}}}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            with pytest.raises(anthropic.BadRequestError) as tool:
                await client.messages.create(
                    model=MOCK_MODEL, max_tokens=10, messages=HELLO, tools=[{"name": "f", "input_schema": city}]
                )
            with pytest.raises(anthropic.BadRequestError) as counted:
                await client.messages.count_tokens(
                    model=MOCK_MODEL, messages=HELLO, tools=[{"name": "f", "input_schema": city}]
                )
            with pytest.raises(anthropic.BadRequestError) as structured:
                await client.messages.create(
                    model=MOCK_MODEL,
                    max_tokens=10,
                    messages=HELLO,
                    extra_body=output,
                )
            good = await client.messages.create(
                model=MOCK_MODEL,
                max_tokens=10,
                messages=HELLO,
                tools=[{"name": "f", "input_schema": {**city, "properties": {"city": {"type": "string"}}}}],
            )
    for caught in (tool, counted):
        assert assert_anthropic_error(caught.value, 400, "invalid_request_error").startswith(
            "Invalid value for 'tools[0].input_schema.properties.city.type': expected one of array, boolean"
        )
    assert assert_anthropic_error(structured.value, 400, "invalid_request_error").startswith(
        "Invalid value for 'output_format.schema.required': expected an array of property names"
    )
    assert good.stop_reason in ("end_turn", "tool_use")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_wrong_key_is_authentication_error() -> None:
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d, async_client(d, api_key="sk-wrong") as client:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
            with pytest.raises(anthropic.AuthenticationError):
                await client.messages.count_tokens(model=MOCK_MODEL, messages=HELLO)
    assert_anthropic_error(caught.value, 401, "authentication_error")


async def test_unknown_model_is_not_found() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            with pytest.raises(anthropic.NotFoundError) as caught:
                await client.messages.create(model="claude-nonexistent", max_tokens=10, messages=HELLO)
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.count_tokens(model="claude-nonexistent", messages=HELLO)
    assert "claude-nonexistent" in assert_anthropic_error(caught.value, 404, "not_found_error")


async def test_body_over_the_cap_is_request_too_large() -> None:
    huge: list[Any] = [{"role": "user", "content": "x" * 5000}]
    with trio.fail_after(30):
        async with running_daemon(mock_config(server={"max_body_bytes": 1024})) as d, async_client(d) as client:
            with pytest.raises(anthropic.APIStatusError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=huge)
    assert_anthropic_error(caught.value, 413, "request_too_large")


async def test_full_queue_is_rate_limit_error_with_retry_after(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with (
            running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d,
            async_client(d) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(lambda: client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO))
            await wait_until(lambda: d.admission().active == 1)
            with pytest.raises(anthropic.RateLimitError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
    assert_anthropic_error(caught.value, 429, "rate_limit_error")
    assert caught.value.response.headers["retry-after"] == "1"


async def test_no_ready_backend_is_overloaded() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            d.backends["mock"].ready = lambda: False  # type: ignore[method-assign]
            with pytest.raises(anthropic.OverloadedError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
            with pytest.raises(anthropic.OverloadedError):
                await client.messages.count_tokens(model=MOCK_MODEL, messages=HELLO)
    assert_anthropic_error(caught.value, 529, "overloaded_error")


async def test_backend_failure_is_an_api_error() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(fail="pre-stream")) as d, async_client(d) as client:
            with pytest.raises(anthropic.InternalServerError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
    assert "pre-stream" in assert_anthropic_error(caught.value, 502, "api_error")


async def test_a_bug_is_a_500_api_error_revealing_only_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(req: ResolvedV2, send: Any) -> None:
        raise ZeroDivisionError("secret internal detail")

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            d.backends["mock"].generate_v2 = broken  # type: ignore[method-assign]
            with pytest.raises(anthropic.InternalServerError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
    message = assert_anthropic_error(caught.value, 500, "api_error")
    request_id = caught.value.response.headers["x-request-id"]
    assert request_id in message and "secret" not in caught.value.response.text
    assert any(r.levelno == logging.ERROR and request_id in r.getMessage() for r in caplog.records)


async def test_a_backend_that_cannot_count_is_bad_request() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            backend = d.backends["mock"]
            backend.count_tokens = types.MethodType(Backend.count_tokens, backend)  # type: ignore[method-assign]
            with pytest.raises(anthropic.BadRequestError) as caught:
                await client.messages.count_tokens(model=MOCK_MODEL, messages=HELLO)
    assert "cannot count tokens" in assert_anthropic_error(caught.value, 400, "invalid_request_error")


async def test_draining_server_is_overloaded(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with (
            running_daemon(mock_config(token_delay_ms=1000)) as d,
            async_client(d) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(lambda: client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO))
            await wait_until(lambda: d.admission().active == 1)
            d.request_stop()
            with pytest.raises(anthropic.OverloadedError) as caught:
                await client.messages.create(model=MOCK_MODEL, max_tokens=10, messages=HELLO)
    assert_anthropic_error(caught.value, 529, "overloaded_error")


async def test_mid_stream_failure_is_one_error_event_and_the_sdk_raises() -> None:
    config = mock_config(fail="mid-stream", fail_after_tokens=2)
    body = {"model": MOCK_MODEL, "max_tokens": 10, "messages": HELLO, "stream": True}
    with trio.fail_after(30):
        async with running_daemon(config) as d, async_client(d) as client, d.http() as http:
            received: list[str] = []
            with pytest.raises(anthropic.APIStatusError) as caught:
                async with client.messages.stream(model=MOCK_MODEL, max_tokens=10, messages=HELLO) as stream:
                    async for text in stream.text_stream:
                        received.append(text)
            raw = await http.post("/v1/messages", json=body)
            await wait_until(lambda: d.admission().active == 0)
    assert received == ["one ", "two "]
    assert "mid-stream" in str(caught.value)
    events = sse_events(raw)
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1]) == {
        "type": "error",
        "error": {"type": "api_error", "message": "mock backend configured to fail mid-stream, after 2 tokens"},
    }
    names = [name for name, _ in events]
    assert names.count("error") == 1 and "message_stop" not in names and "message_delta" not in names


async def test_a_bug_mid_stream_is_an_error_event_with_the_request_id() -> None:
    async def breaks_after_one(req: ResolvedV2, send: Any) -> None:
        await send.send(Text("partial "))
        raise KeyError("secret internal detail")

    body = {"model": MOCK_MODEL, "max_tokens": 10, "messages": HELLO, "stream": True}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, d.http() as http:
            d.backends["mock"].generate_v2 = breaks_after_one  # type: ignore[method-assign]
            raw = await http.post("/v1/messages", json=body)
    name, data = sse_events(raw)[-1]
    assert name == "error"
    error = json.loads(data)["error"]
    assert error["type"] == "api_error" and raw.headers["x-request-id"] in error["message"]
    assert "secret" not in raw.text


async def test_two_x_api_key_headers_are_refused() -> None:
    body = {"model": MOCK_MODEL, "max_tokens": 10, "messages": HELLO}
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d, d.http(api_key="") as http:
            response = await http.post(
                "/v1/messages", json=body, headers=[("x-api-key", d.api_key), ("x-api-key", "sk-other")]
            )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "The request has 2 x-api-key headers; send exactly one",
        },
    }
