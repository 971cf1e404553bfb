"""Threat: a client declares a request body, sends a few bytes of it and goes quiet (slowloris).

Defence: after ``write_timeout_s`` the request gets 408 ``request_timeout`` and the server closes the
connection (h11 cannot reuse a connection whose request body was not read), so each stalled client costs a
task and a socket only until its deadline. Before the fix the 408 arrived and the socket then stayed open
forever: hypercorn's close ran in the app's task, which quart cancels on the disconnect it is told about just
before. On the autojump clock the waits cost no real time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import trio

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until
from tests.reliability.process_state import task_count

STALLED = 5
WRITE_TIMEOUT_S = 5
CONFIG = mock_config(active=1, queue=0, server={"write_timeout_s": WRITE_TIMEOUT_S})
MESSAGES = [{"role": "user", "content": "still here"}]
#: A declared body of 1,000 bytes of which only the first 9 are ever sent.
STALLED_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"model":'
)


def open_sockets() -> int:
    """How many sockets this process (test client and in-process daemon alike) has open right now."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in os.listdir(fds):
        try:
            count += os.readlink(fds / fd).startswith("socket:")
        except FileNotFoundError:  # the fd listdir itself used, closed by now
            continue
    return count


async def serve_a_normal_client(d: RunningDaemon) -> None:
    """The daemon still answers a real client after the stalled ones are gone."""
    async with d.client() as client:
        reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "still here"


async def receive_until_eof(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def test_stalled_body_gets_408_then_the_connection_closes(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(600):
        async with running_daemon(CONFIG) as d:
            baseline_tasks, baseline_sockets = task_count(), open_sockets()  # no client connected yet
            streams = [await trio.open_tcp_stream("127.0.0.1", d.inference_port) for _ in range(STALLED)]
            for stream in streams:
                await stream.send_all(STALLED_REQUEST)
            replies: dict[int, bytes] = {}

            async def read(index: int, stream: trio.SocketStream) -> None:
                replies[index] = await receive_until_eof(stream)

            async with trio.open_nursery() as nursery:
                for index, stream in enumerate(streams):
                    nursery.start_soon(read, index, stream)
            assert len(replies) == STALLED
            for data in replies.values():
                head, _, body = data.partition(b"\r\n\r\n")
                status_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
                assert status_line.split()[1] == "408"
                assert len(body) == int(headers["content-length"])  # the whole 408, then EOF
                error = json.loads(body)["error"]
                assert (error["type"], error["code"]) == ("invalid_request_error", "request_timeout")
            for stream in streams:
                await stream.aclose()
            await wait_until(lambda: task_count() == baseline_tasks and open_sockets() == baseline_sockets)
            assert len(d.daemon.inflight) == 0
            assert d.admission().active == 0
            assert d.backend_status()["started"] == 0  # no stalled request reached the backend
            await serve_a_normal_client(d)
