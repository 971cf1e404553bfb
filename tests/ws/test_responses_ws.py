"""``GET /v1/responses`` over WebSocket with the openai SDK's own ``client.responses.connect()``.

The SDK's WebSocket client (the ``websockets`` package) is blocking (sync) or asyncio (async), so each client
runs in a worker thread (the async one under ``asyncio.run``) while the daemon runs in the test's trio loop, on
the real clock: the worker thread's waits are invisible to an autojump clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
import trio
from websockets.sync.client import connect as ws_connect

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, keyed_config, mock_config, running_daemon, wait_until

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def sync_client(d: RunningDaemon, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.base_url, api_key=api_key or d.api_key, max_retries=0)


def until_terminal(events: Any) -> list[Any]:
    """Events up to and including the next terminal one."""
    taken = []
    for event in events:
        taken.append(event)
        if event.type in TERMINAL:
            return taken
    raise AssertionError("the socket closed before a terminal event")


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_several_responses_in_sequence_on_one_socket_and_a_tool_call() -> None:
    def session(d: RunningDaemon) -> list[list[Any]]:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.create(model=MOCK_MODEL, input="hello big world")
            first = until_terminal(conn)
            conn.response.create(model=MOCK_MODEL, input="second one")
            second = until_terminal(conn)
            conn.response.create(model=MOCK_MODEL, input="weather?", tools=[WEATHER], tool_choice="required")
            third = until_terminal(conn)
            call = next(e.item for e in third if e.type == "response.output_item.done")
            conn.response.create(
                model=MOCK_MODEL,
                tools=[WEATHER],
                input=[
                    {"role": "user", "content": "weather?"},
                    {
                        "type": "function_call",
                        "call_id": call.call_id,
                        "name": call.name,
                        "arguments": call.arguments,
                    },
                    {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
                    {"role": "user", "content": "thanks"},
                ],
            )
            fourth = until_terminal(conn)
        return [first, second, third, fourth]

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            first, second, third, fourth = await in_thread(lambda: session(d))
    for events in (first, second, third, fourth):
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    assert first[0].response.id != second[0].response.id
    assert "".join(e.delta for e in first if e.type == "response.output_text.delta") == "hello big world"
    assert second[-1].response.output[0].content[0].text == "second one"
    call = third[-1].response.output[0]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": ""}
    assert fourth[-1].response.output[0].content[0].text == "thanks"


async def test_async_sdk_connection() -> None:
    async def session(d: RunningDaemon) -> list[str]:
        async with (
            openai.AsyncOpenAI(base_url=d.base_url, api_key="unused", max_retries=0) as client,
            client.responses.connect(max_retries=0) as conn,
        ):
            await conn.response.create(model=MOCK_MODEL, input="async hello")
            deltas = []
            async for event in conn:
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                if event.type == "response.completed":
                    return deltas
        raise AssertionError("closed early")

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            deltas = await in_thread(lambda: asyncio.run(session(d)))
    assert deltas == ["async ", "hello"]


async def test_a_second_create_while_one_runs_is_an_error_event() -> None:
    def session(d: RunningDaemon) -> list[Any]:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.create(model=MOCK_MODEL, input="one two three four")
            conn.response.create(model=MOCK_MODEL, input="again")
            events = until_terminal(conn)  # the error event comes first, while the first response runs
            events += until_terminal(conn)
        return events

    with trio.fail_after(30):
        async with running_daemon(mock_config(token_delay_ms=50)) as d:
            events = await in_thread(lambda: session(d))
            assert d.backend_status()["started"] == 1
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].error.code == "response_in_progress" and errors[0].status == 409
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three four"


async def test_steer_and_bad_events_get_error_events_and_the_socket_stays_open() -> None:
    def session(d: RunningDaemon) -> list[Any]:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.steer(input=[{"role": "user", "content": "faster"}], previous_response_id="resp_1")
            steer = conn.recv()
            conn.send_raw("not json")  # type: ignore[attr-defined]
            bad = conn.recv()
            conn.response.create(model=MOCK_MODEL, input="x", previous_response_id="resp_1")
            unsupported = conn.recv()
            conn.response.create(model=MOCK_MODEL, input="still here")
            done = until_terminal(conn)
        return [steer, bad, unsupported, done[-1]]

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            steer, bad, unsupported, done = await in_thread(lambda: session(d))
    assert (steer.type, steer.error.code) == ("error", "unsupported")
    assert (bad.type, bad.error.code) == ("error", "invalid_json")
    assert (unsupported.error.code, unsupported.error.param) == ("unsupported_parameter", "previous_response_id")
    assert done.type == "response.completed"


async def test_closing_the_socket_cancels_the_response_and_frees_the_slot() -> None:
    def start_and_leave(d: RunningDaemon) -> str:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.create(model=MOCK_MODEL, input=" ".join(["word"] * 200))
            for event in conn:
                if event.type == "response.output_text.delta":
                    return event.delta
        raise AssertionError("closed early")

    with trio.fail_after(30):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=50)) as d:
            assert await in_thread(lambda: start_and_leave(d)) == "word "
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0)
            async with d.client() as client:
                follow = await client.responses.create(model=MOCK_MODEL, input="next")
            assert follow.output_text == "next"
            assert d.backend_status()["completed"] == 1


async def test_failure_before_the_first_event_is_an_error_event() -> None:
    def session(d: RunningDaemon) -> list[Any]:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.create(model="no-such-model", input="x")
            missing = conn.recv()
            conn.response.create(model=MOCK_MODEL, input="x")
            failed = conn.recv()
        return [missing, failed]

    with trio.fail_after(30):
        async with running_daemon(mock_config(fail="pre-stream")) as d:
            missing, failed = await in_thread(lambda: session(d))
    assert (missing.type, missing.status, missing.error.code) == ("error", 404, "model_not_found")
    assert (failed.type, failed.status, failed.error.code) == ("error", 502, "upstream_error")


async def test_upgrade_needs_the_api_key() -> None:
    def refused(d: RunningDaemon) -> int:
        url = d.base_url.replace("http://", "ws://") + "/responses"
        with pytest.raises(Exception) as info, ws_connect(url, open_timeout=10):
            pass
        return int(info.value.response.status_code)  # type: ignore[attr-defined]

    def accepted(d: RunningDaemon) -> str:
        with sync_client(d) as client, client.responses.connect(max_retries=0) as conn:
            conn.response.create(model=MOCK_MODEL, input="keyed")
            return str(until_terminal(conn)[-1].type)

    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d:
            assert await in_thread(lambda: refused(d)) == 401
            assert await in_thread(lambda: accepted(d)) == "response.completed"
