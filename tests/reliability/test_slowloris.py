"""Slowloris: clients that send a request a few bytes at a time, or stop half-way, hold nothing for long.

Many connections each send the start of a request and then go quiet: half the headers, or the headers and
part of a declared body. Meanwhile the daemon (one slot, no queue) must keep serving normal clients, and each
stalled request must end on its own: a request whose body stops arriving gets 408 ``request_timeout`` in
OpenAI's error shape after ``write_timeout_s`` (the body deadline), a connection whose headers never finish is
closed after hypercorn's keep-alive timeout. Bodies over the size cap are covered in
``tests/security/test_body_cap.py``. On the autojump clock the stalls cost no real time.
"""

from __future__ import annotations

import json

import trio

from proxy.listener import KEEP_ALIVE_S
from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until
from tests.reliability.process_state import task_count

STALLED = 50
CONFIG = mock_config(active=1, queue=0, server={"write_timeout_s": 5})
MESSAGES = [{"role": "user", "content": "still here"}]


async def serve_a_normal_client(d: RunningDaemon) -> None:
    """While the stalled connections are open, a real client is answered (they hold no slot: queue = 0)."""
    async with d.client() as client:
        reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "still here"


async def read_response(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """One whole HTTP/1.1 response with a Content-Length body: (status, headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = await stream.receive_some(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(status_line.split()[1]), headers, body


async def test_bodies_that_stop_arriving_get_408_and_hold_nothing(autojump_clock: trio.abc.Clock) -> None:
    body = json.dumps({"model": MOCK_MODEL, "messages": MESSAGES}).encode()
    with trio.fail_after(120):
        async with running_daemon(CONFIG) as d:
            head = (
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            streams = [await trio.open_tcp_stream("127.0.0.1", d.inference_port) for _ in range(STALLED)]
            for stream in streams:
                await stream.send_all(head + body[: len(body) // 2])  # half the body, then silence
            await serve_a_normal_client(d)
            answers = []
            async with trio.open_nursery() as nursery:
                for stream in streams:
                    nursery.start_soon(lambda s=stream: collect(s, answers))
            assert len(answers) == STALLED
            for status, headers, error_body in answers:
                assert status == 408
                assert headers["content-type"] == "application/json"
                error = json.loads(error_body)["error"]
                assert (error["type"], error["code"], error["param"]) == (
                    "invalid_request_error",
                    "request_timeout",
                    None,
                )
            await wait_until(lambda: len(d.daemon.inflight) == 0)
            assert d.admission().active == 0
            assert d.backend_status()["started"] == 1  # only the normal client's request reached the backend
            for stream in streams:
                await stream.aclose()
            await serve_a_normal_client(d)


async def collect(stream: trio.SocketStream, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
    answers.append(await read_response(stream))


async def test_headers_that_never_finish_are_closed(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(300):
        async with running_daemon(CONFIG) as d:
            idle_tasks = task_count()
            streams = [await trio.open_tcp_stream("127.0.0.1", d.inference_port) for _ in range(STALLED)]
            for stream in streams:
                await stream.send_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
            await serve_a_normal_client(d)
            for stream in streams:
                assert await stream.receive_some(65536) == b""  # closed by the server, no response
                await stream.aclose()
            await wait_until(lambda: task_count() == idle_tasks)
            assert len(d.daemon.inflight) == 0
            assert d.backend_status()["started"] == 1
            await serve_a_normal_client(d)


async def test_a_connection_left_idle_after_its_request_is_closed(autojump_clock: trio.abc.Clock) -> None:
    """A client that got its answer and then holds the keep-alive connection open, silent, is closed after the
    keep-alive timeout, as one that never finished its headers is; it holds no task after that."""
    with trio.fail_after(300):
        async with running_daemon(CONFIG) as d:
            idle_tasks = task_count()
            streams = [await trio.open_tcp_stream("127.0.0.1", d.inference_port) for _ in range(STALLED)]
            for stream in streams:
                await stream.send_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, headers, _ = await read_response(stream)
                assert status == 200 and headers.get("connection") != "close"
            quiet_since = trio.current_time()
            for stream in streams:
                assert await stream.receive_some(65536) == b""  # closed by the server
                await stream.aclose()
            assert trio.current_time() - quiet_since >= KEEP_ALIVE_S
            await wait_until(lambda: task_count() == idle_tasks)
            await serve_a_normal_client(d)
