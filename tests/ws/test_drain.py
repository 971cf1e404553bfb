"""Graceful stop: sockets refuse new requests, let in-flight ones finish (or abort them at the stop deadline),
then close with 1001 (going away)."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from tests.daemon_harness import mock_config, running_daemon, wait_until

from .wsclient import connect, create, next_frame, text_of, until_terminal


async def assert_going_away(ws: WebSocketConnection) -> None:
    with pytest.raises(ConnectionClosed) as caught:
        frame = await next_frame(ws)
        raise AssertionError(f"unexpected frame {frame}")
    assert caught.value.reason is not None
    assert caught.value.reason.code == 1001


async def test_in_flight_requests_finish_new_ones_are_refused_then_1001(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, server={"stop_timeout_s": 30})) as d:
            async with connect(d) as ws:
                await ws.send_message(create("old", "one two three four five"))
                first = await next_frame(ws)
                d.request_stop()
                await ws.send_message(create("new", "too late"))
                frames = await until_terminal(ws, "old", "new")
                assert frames["new"] == [
                    {
                        "type": "error",
                        "id": "new",
                        "error": {
                            "message": "The server is shutting down; retry against another instance",
                            "type": "server_error",
                            "param": None,
                            "code": "server_shutting_down",
                        },
                    }
                ]
                assert frames["old"][-1]["type"] == "chat.completion.done"
                assert text_of([first, *frames["old"]]) == "one two three four five"
                await assert_going_away(ws)
            assert d.backend_status()["completed"] == 1
            assert d.backend_status()["started"] == 1


async def test_at_the_stop_deadline_requests_get_server_shutting_down_then_1001(
    autojump_clock: trio.abc.Clock,
) -> None:
    long = " ".join(f"w{i}" for i in range(100))
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, server={"stop_timeout_s": 2})) as d:
            async with connect(d) as ws:
                await ws.send_message(create("long", long))
                await next_frame(ws)
                d.request_stop()
                frames = (await until_terminal(ws, "long"))["long"]
                assert frames[-1]["type"] == "error"
                assert frames[-1]["error"]["code"] == "server_shutting_down"
                assert all(f["type"] == "chat.completion.chunk" for f in frames[:-1])
                assert len(frames) < 100
                await assert_going_away(ws)
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.admission().active == 0


async def test_an_idle_socket_is_closed_with_1001_when_the_stop_begins() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            d.request_stop()
            await assert_going_away(ws)
