"""Backpressure: a client that stops reading is cut off after ``write_timeout_s`` and every slot its requests
held is freed; a slow reader that keeps reading is not."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.daemon_harness import mock_config, running_daemon, wait_until

from .wsclient import connect, create, next_frame

#: 400 chunks of 64 KiB per answer: far more than the socket buffers of both ends hold.
FLOOD = ["x" * 65536] * 400


async def test_a_client_that_stops_reading_is_cut_off_and_all_its_slots_freed(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = mock_config(reply=FLOOD, server={"write_timeout_s": 5})
    with trio.fail_after(120):
        # trio-websocket stops reading the socket once its one-message queue is full.
        async with running_daemon(config) as d, connect(d, message_queue_size=1) as ws:
            await ws.send_message(create("one"))
            await ws.send_message(create("two"))
            await wait_until(lambda: d.backend_status()["started"] == 2)
            await trio.sleep(4)
            assert d.backend_status()["cancelled"] == 0  # a stalled reader is not cut off early...
            assert d.admission().active == 2
            await wait_until(lambda: d.backend_status()["cancelled"] == 2)  # ...but after write_timeout_s
            assert d.backend_status()["completed"] == 0
            assert d.backend_status()["active"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await wait_until(lambda: len(d.daemon.inflight) == 0)
            received = 0
            with pytest.raises(ConnectionClosed) as caught:
                while True:
                    await next_frame(ws)
                    received += 1
            assert received < 2 * len(FLOOD)
            assert caught.value.reason is not None
            assert caught.value.reason.code == 1006  # cut off: no close frame


async def test_a_slow_but_steady_reader_is_not_cut_off(autojump_clock: trio.abc.Clock) -> None:
    # Autojump: every delay of the kernel reopening the TCP window also jumps virtual time, so leave 300 reads'
    # worth of margin rather than 5 (a loaded machine must not turn slow reading into a stall).
    config = mock_config(reply=["x" * 65536] * 200, server={"write_timeout_s": 30})
    with trio.fail_after(600):
        async with running_daemon(config) as d, connect(d, message_queue_size=1) as ws:
            await ws.send_message(create("slow"))
            frames = 0
            while True:
                frame = await next_frame(ws)
                frames += 1
                if frame["type"] != "chat.completion.chunk":
                    break
                await trio.sleep(0.1)  # slower than the server writes, never 30 s without reading
            assert frame["type"] == "chat.completion.done"
            assert frames == 1 + 200 + 2  # the role chunk, the tokens, the finish chunk, done
            assert d.backend_status()["completed"] == 1
