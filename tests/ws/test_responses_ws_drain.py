"""Graceful stop on the Responses WebSocket: the running response finishes (or fails at the stop deadline), a
new ``response.create`` is refused, then the socket closes with 1001 (going away). The client here is
trio-websocket, so the autojump clock drives every delay."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until

from .wsclient import open_ws

TERMINAL = ("response.completed", "response.incomplete", "response.failed", "error")


def url(d: RunningDaemon) -> str:
    return d.inference_url.replace("http://", "ws://", 1) + "/v1/responses"


def create(text: str) -> str:
    return json.dumps({"type": "response.create", "model": MOCK_MODEL, "input": text})


async def next_event(ws: WebSocketConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await ws.get_message())
    return event


async def events_until_terminal(ws: WebSocketConnection, count: int = 1) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(10_000):
        events.append(await next_event(ws))
        if events[-1]["type"] in TERMINAL:
            count -= 1
            if not count:
                return events
    raise AssertionError("no terminal event")


async def assert_going_away(ws: WebSocketConnection) -> None:
    with pytest.raises(ConnectionClosed) as caught:
        raise AssertionError(f"unexpected event {await next_event(ws)}")
    assert caught.value.reason is not None and caught.value.reason.code == 1001


async def test_the_running_response_finishes_a_new_one_is_refused_then_1001(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, server={"stop_timeout_s": 30})) as d:
            async with open_ws(url(d)) as ws:
                await ws.send_message(create("one two three four five"))
                assert (await next_event(ws))["type"] == "response.created"
                d.request_stop()
                await ws.send_message(create("too late"))
                events = await events_until_terminal(ws, count=2)
                refused = [e for e in events if e["type"] == "error"]
                assert [e["error"]["code"] for e in refused] == ["server_shutting_down"]
                assert events[-1]["type"] == "response.completed"
                text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
                assert text == "one two three four five"
                await assert_going_away(ws)
            assert d.backend_status()["completed"] == 1 and d.backend_status()["started"] == 1


async def test_at_the_stop_deadline_the_response_fails_then_1001(autojump_clock: trio.abc.Clock) -> None:
    long = " ".join(f"w{i}" for i in range(100))
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, server={"stop_timeout_s": 2})) as d:
            async with open_ws(url(d)) as ws:
                await ws.send_message(create(long))
                await next_event(ws)
                d.request_stop()
                events = await events_until_terminal(ws)
                failed = events[-1]
                assert failed["type"] == "response.failed"
                assert failed["response"]["error"]["code"] == "server_error"
                assert "shutting down" in failed["response"]["error"]["message"]
                assert len([e for e in events if e["type"] == "response.output_text.delta"]) < 100
                await assert_going_away(ws)
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.admission().active == 0


async def test_a_binary_frame_closes_the_socket_with_1003() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, open_ws(url(d)) as ws:
            await ws.send_message(b"\x00")
            with pytest.raises(ConnectionClosed) as caught:
                await ws.get_message()
    assert caught.value.reason is not None and caught.value.reason.code == 1003
