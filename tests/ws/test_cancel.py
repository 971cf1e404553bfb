"""Per-request cancel and socket close: the generation stops, its slot is freed, everything else goes on."""

from __future__ import annotations

import trio

from tests.daemon_harness import mock_config, running_daemon, wait_until

from .wsclient import cancel, connect, create, next_frame, text_of, until_terminal

LONG = " ".join(f"w{i}" for i in range(50))


async def test_cancel_stops_one_request_frees_its_slot_and_the_other_finishes(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100)) as d, connect(d) as ws:
            await ws.send_message(create("keep", "short answer here"))
            await ws.send_message(create("stop", LONG))
            early = [await next_frame(ws)]
            while early[-1]["id"] != "stop":
                early.append(await next_frame(ws))
            await ws.send_message(cancel("stop"))
            frames = await until_terminal(ws, "keep", "stop")
            frames["keep"][:0] = [f for f in early if f["id"] == "keep"]
            assert frames["stop"][-1] == {
                "type": "error",
                "id": "stop",
                "error": {
                    "message": "The request was cancelled by the client",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "request_cancelled",
                },
            }
            assert all(f["type"] == "chat.completion.chunk" for f in frames["stop"][:-1])
            assert len(frames["stop"]) < 50  # it really stopped part way
            assert frames["keep"][-1]["type"] == "chat.completion.done"
            assert text_of(frames["keep"]) == "short answer here"
            # The cancelled frame is sent only once the backend returned and the slot is free.
            assert d.backend_status()["cancelled"] == 1
            assert d.backend_status()["active"] == 0
            assert d.admission().active == 0
            # The socket is still open and the id is free again.
            await ws.send_message(create("stop", "again"))
            assert text_of((await until_terminal(ws, "stop"))["stop"]) == "again"


async def test_cancel_while_queued_leaves_the_queue_without_reaching_the_backend(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, active=1, queue=5)) as d, connect(d) as ws:
            await ws.send_message(create("running", "one two three"))
            assert (await next_frame(ws))["id"] == "running"
            await ws.send_message(create("queued", "never"))
            await wait_until(lambda: d.admission().queued == 1)
            await ws.send_message(cancel("queued"))
            frames = await until_terminal(ws, "queued", "running")
            assert [f["type"] for f in frames["queued"]] == ["error"]
            assert frames["queued"][0]["error"]["code"] == "request_cancelled"
            assert d.admission().queued == 0
            assert d.backend_status()["started"] == 1  # the queued request never reached the backend
            assert frames["running"][-1]["type"] == "chat.completion.done"


async def test_cancel_of_an_unknown_or_finished_id_is_ignored() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            await ws.send_message(create("done-already", "hi"))
            await until_terminal(ws, "done-already")
            await ws.send_message(cancel("done-already"))
            await ws.send_message(cancel("never-existed"))
            await ws.send_message(create("next", "still here"))
            # The first frame after the two cancels belongs to the new request: the cancels sent nothing.
            assert (await next_frame(ws))["id"] == "next"  # its role chunk
            assert text_of((await until_terminal(ws, "next"))["next"]) == "still here"


async def test_closing_the_socket_cancels_all_of_its_requests(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, active=1, queue=5)) as d:
            async with connect(d) as ws:
                await ws.send_message(create("a", LONG))
                await ws.send_message(create("b", LONG))
                await ws.send_message(create("c", LONG))
                assert (await next_frame(ws))["id"] == "a"
                await wait_until(lambda: d.admission().queued == 2)
            # Leaving the block closed the socket: the running generation is cancelled, the queued ones leave.
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0 and d.admission().queued == 0)
            assert d.backend_status()["started"] == 1
            assert d.backend_status()["completed"] == 0
            assert d.backend_status()["active"] == 0
            assert len(d.daemon.inflight) == 0
