"""Faults are contained: after each one the same daemon serves the next request normally, with nothing leaked.

Each fault's own contract (status, error event, counters) is checked where it is implemented:
``tests/proxy/test_errors_http.py`` (pre-stream 502, mid-stream error event), ``tests/proxy/test_lifecycle.py``
(boot failure, boot timeout, stop past the deadline), ``tests/proxy/test_cancellation.py`` (a disconnect in each
of the four phases) and ``tests/security/test_write_stall.py`` (a reader that stops). This module runs them
*back to back on one daemon*, several times, and checks after every single fault that a healthy model on the
same daemon answers in full and that no slot, queue place or request is left held; and it adds what those do
not cover: a slow reader that keeps reading gets its whole stream, and a failed start leaves nothing behind.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
import trio

from proxy.daemon import StartupError
from tests.daemon_harness import MOCK_MODEL, RunningDaemon, running_daemon, wait_until
from tests.reliability.process_state import task_count

TEXT = "one two three four five six"
MESSAGES: list[Any] = [{"role": "user", "content": TEXT}]
BROKEN = "mock-broken"
FLAKY = "mock-flaky"

#: A healthy model with one slot and one queue place (a leaked slot or queue place shows at once), a model
#: whose backend fails before streaming, and one that fails after two tokens.
FAULTY_CONFIG: dict[str, Any] = {
    "server": {"write_timeout_s": 5},
    "backends": [
        {"name": "mock", "kind": "mock", "models": [MOCK_MODEL], "active": 1, "queue": 1, "token_delay_ms": 200},
        {"name": "broken", "kind": "mock", "models": [BROKEN], "fail": "pre-stream"},
        {"name": "flaky", "kind": "mock", "models": [FLAKY], "fail": "mid-stream", "fail_after_tokens": 2},
    ],
}


async def served_normally(d: RunningDaemon) -> None:
    """Nothing is held, and the healthy model answers whole, plain and streamed."""
    names = ("mock", "broken", "flaky")
    await wait_until(lambda: all(d.admission(n).active == 0 and d.admission(n).queued == 0 for n in names))
    await wait_until(lambda: len(d.daemon.inflight) == 0)
    async with d.client() as client:
        reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content == TEXT
        assert reply.choices[0].finish_reason == "stop"
        stream = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


async def pre_stream_failure(d: RunningDaemon) -> None:
    async with d.client() as client:
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model=BROKEN, messages=MESSAGES, stream=stream)
            assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")


async def mid_stream_failure(d: RunningDaemon) -> None:
    async with d.client() as client:
        # Not streamed yet when it fails: a status. Streamed: the tokens sent, then one error event.
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model=FLAKY, messages=MESSAGES)
        assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
        stream = await client.chat.completions.create(model=FLAKY, messages=MESSAGES, stream=True)
        received: list[str] = []
        with pytest.raises(openai.APIError) as error_event:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert received == ["", "one ", "two "]
        assert error_event.value.code == "upstream_error"


async def disconnect_mid_stream(d: RunningDaemon) -> None:
    async with d.client() as client:
        stream = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)
        role = await stream.__anext__()
        assert role.choices[0].delta.content == ""
        first = await stream.__anext__()
        assert first.choices[0].delta.content == "one "
        await stream.close()


async def disconnect_before_first_token(d: RunningDaemon) -> None:
    started = d.backend_status()["started"]
    async with trio.open_nursery() as nursery, d.client() as client:
        nursery.start_soon(
            lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)
        )
        await wait_until(lambda: d.backend_status()["started"] == started + 1)
        nursery.cancel_scope.cancel()


async def disconnect_non_streaming(d: RunningDaemon) -> None:
    started = d.backend_status()["started"]
    async with trio.open_nursery() as nursery, d.client() as client:
        nursery.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
        await wait_until(lambda: d.backend_status()["started"] == started + 1)
        await trio.sleep(0.5)  # a few tokens in
        nursery.cancel_scope.cancel()


async def disconnect_while_queued(d: RunningDaemon) -> None:
    async with trio.open_nursery() as holder, d.client() as client:
        holder.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
        await wait_until(lambda: d.admission().active == 1)
        async with trio.open_nursery() as queued:
            queued.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
            await wait_until(lambda: d.admission().queued == 1)
            queued.cancel_scope.cancel()
        await wait_until(lambda: d.admission().queued == 0)
        holder.cancel_scope.cancel()


FAULTS: list[tuple[str, Callable[[RunningDaemon], Awaitable[None]]]] = [
    ("pre-stream failure", pre_stream_failure),
    ("mid-stream failure", mid_stream_failure),
    ("disconnect mid-stream", disconnect_mid_stream),
    ("disconnect before the first token", disconnect_before_first_token),
    ("disconnect during a non-streaming request", disconnect_non_streaming),
    ("disconnect while queued", disconnect_while_queued),
]
CYCLES = 3


async def test_faults_back_to_back_leave_the_daemon_serving(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(600):
        async with running_daemon(FAULTY_CONFIG) as d:
            for _ in range(CYCLES):
                for _name, fault in FAULTS:
                    await fault(d)
                    await served_normally(d)
                # Past the circuit breaker's 60 s window: the faulty backends keep failing the same way
                # (their breakers are tested in tests/proxy/test_routing_http.py).
                await trio.sleep(61)
            healthy = d.backend_status("mock")
            # Per cycle the healthy backend ran: 2 per served_normally x 6, plus 4 generations disconnected
            # (mid-stream, before the first token, non-streaming, and the slot holder of the queued case).
            assert healthy["completed"] == CYCLES * 2 * len(FAULTS)
            assert healthy["cancelled"] == CYCLES * 4
            assert healthy["active"] == 0
            assert healthy["failed"] == 0
            assert d.backend_status("broken")["failed"] == CYCLES * 2
            assert d.backend_status("flaky")["failed"] == CYCLES * 2
            assert d.admission("mock").timed_out_total == 0


BIG_REPLY = ["x" * 4096] * 128  # 512 KiB of tokens: more than both socket buffers hold


async def test_a_slow_reader_gets_its_whole_stream(autojump_clock: trio.abc.Clock) -> None:
    """A client reading far slower than the server writes (but within write_timeout_s) is never cut off."""
    # On the autojump clock, every moment the kernel takes to reopen the TCP window is also a jump of virtual
    # time; a write timeout of 300 sleeps keeps a loaded machine from turning slow reading into a stall.
    config = {
        "server": {"write_timeout_s": 30},
        "backends": [
            {"name": "mock", "kind": "mock", "models": [MOCK_MODEL], "active": 1, "queue": 0, "reply": BIG_REPLY}
        ],
    }
    body = json.dumps({"model": MOCK_MODEL, "stream": True, "messages": MESSAGES}).encode()
    with trio.fail_after(600):
        async with running_daemon(config) as d:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            received = bytearray()
            with sock:
                await sock.connect(("127.0.0.1", d.inference_port))
                head = (
                    f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                await sock.send(head.encode() + body)
                while not received.endswith(b"\r\n0\r\n\r\n"):  # the last chunk of a chunked body
                    data = await sock.recv(16384)
                    assert data, "the server closed the stream before [DONE]"
                    received += data
                    await trio.sleep(0.1)  # small reads, slowly: the server's writes block in between
            assert d.backend_status()["completed"] == 1
            assert d.backend_status()["cancelled"] == 0
            await served_normally_single(d)
    text = bytes(received)
    assert text.startswith(b"HTTP/1.1 200")
    assert text.count(b'"content":"' + b"x" * 4096 + b'"') == len(BIG_REPLY)
    assert b"data: [DONE]\n\n" in text


async def served_normally_single(d: RunningDaemon) -> None:
    await wait_until(lambda: d.admission().active == 0 and len(d.daemon.inflight) == 0)
    async with d.client() as client:
        reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, max_tokens=3)
    assert reply.choices[0].finish_reason == "length"


@pytest.mark.parametrize(
    "fault",
    [{"fail": "boot", "boot_delay_ms": 10}, {"boot_delay_ms": 60_000}],
    ids=["boot failure", "boot timeout"],
)
async def test_a_failed_start_leaves_nothing_behind(autojump_clock: trio.abc.Clock, fault: dict[str, Any]) -> None:
    """After a boot failure or boot timeout: no task left, the admin port released, and a good config serves."""
    idle_tasks = task_count()
    backend = {"name": "mock", "kind": "mock", "models": [MOCK_MODEL]}
    admin_ports: list[int] = []
    with trio.fail_after(60):
        with pytest.raises(StartupError):
            bad = {"server": {"ready_timeout_s": 5}, "backends": [{**backend, **fault}]}
            async with running_daemon(bad, wait_ready=False) as d:
                admin_ports.append(d.admin_port)  # the admin listener binds before any backend boots
                await d.daemon.wait_ready()
        assert task_count() == idle_tasks
        with pytest.raises(OSError):  # nobody listens there any more...
            await trio.open_tcp_stream("127.0.0.1", admin_ports[0])
        with socket.socket() as probe:  # ...and the port can be bound again at once
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", admin_ports[0]))
        async with running_daemon({"backends": [backend]}) as d, d.client() as client:
            reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
        assert reply.choices[0].message.content == TEXT
