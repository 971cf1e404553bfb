"""Fault injection inside one connection: whatever raises there ends that connection only.

``proxy.listener`` runs every connection in its own `Connection` and catches any exception from inside it
(hypercorn, h11 or trinfer's own protocol code), so one connection's failure can neither reach a listener nor
the daemon's root nursery. Here a fault is injected into one specific connection - the one whose bytes carry
`MARKER`, sent while that connection is streaming a chat answer and so holds an admission slot - at three
layers of the connection's reader:

- h11's ``Connection.receive_data`` raises ``h11.LocalProtocolError`` (h11 raised out of a connection's reader
  when hypercorn answered a frame after a refused WebSocket upgrade);
- hypercorn's ``H11Protocol.handle`` raises ``KeyError`` (as its HTTP/2 code did for a late DATA frame);
- trinfer's own ``proxy.http11.Http11Protocol.handle`` raises ``RuntimeError``.

Each test asserts what a user and an operator see: the faulty connection is closed mid-answer, one ERROR line
names its connection id, the connections opened before it (a keep-alive ``/health`` client on each listener
and another streaming chat) go on being served, new connections are served on both listeners, the slot is
freed, and the graceful stop completes. An exception raised by the ASGI app (a middleware, a view) never gets
this far: hypercorn's app wrapper catches it inside the request's task; those are covered by the error-path
tests in ``tests/proxy/``. Autojump clock throughout.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import h11
import pytest
import trio
from hypercorn.events import Event, RawData
from hypercorn.protocol.h11 import H11Protocol

from proxy.daemon import DaemonState
from proxy.http11 import Http11Protocol
from tests.daemon_harness import MOCK_MODEL, RunningDaemon, keyed_config, mock_config, running_daemon, wait_until

#: The bytes that trigger the injected fault (sent on the victim connection after its request).
MARKER = b"INJECT-FAULT"
#: 200 tokens 100 ms apart: a stream that is still running whenever the test looks.
CONFIG = keyed_config(mock_config(reply=["tok "] * 200, token_delay_ms=100, server={"write_timeout_s": 5}))


class InjectedFault(Exception):
    """Nothing in the daemon raises this: only the patched methods below."""


def patch_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    original = h11.Connection.receive_data

    def receive_data(self: h11.Connection, data: bytes) -> None:
        if MARKER in data:
            raise h11.LocalProtocolError("injected h11 fault")
        original(self, data)

    monkeypatch.setattr(h11.Connection, "receive_data", receive_data)


def wrap_handle(monkeypatch: pytest.MonkeyPatch, cls: type[H11Protocol], error: Callable[[], Exception]) -> None:
    original = cls.handle

    async def handle(self: H11Protocol, event: Event) -> None:
        if isinstance(event, RawData) and MARKER in event.data:
            raise error()
        await original(self, event)

    monkeypatch.setattr(cls, "handle", handle)


FAULTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "h11": patch_h11,
    "hypercorn": lambda mp: wrap_handle(mp, H11Protocol, lambda: KeyError("injected hypercorn fault")),
    "trinfer": lambda mp: wrap_handle(mp, Http11Protocol, lambda: InjectedFault("injected trinfer fault")),
}
EXPECTED = {"h11": h11.LocalProtocolError, "hypercorn": KeyError, "trinfer": InjectedFault}


def chat_request(api_key: str) -> bytes:
    body = json.dumps(
        {"model": MOCK_MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def read_until(stream: trio.SocketStream, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"closed before {needle!r}: {data[-300:]!r}"
        data += chunk
    return data


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = b""
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # a reset is an end too
            return data
        if not chunk:
            return data
        data += chunk


async def streaming_chat(d: RunningDaemon, started: trio.Event, release: trio.Event, result: list[str]) -> None:
    """A chat on its own connection, open across the fault: reads its first token, then the rest after it."""
    async with d.client() as client:
        stream = await client.chat.completions.create(
            model=MOCK_MODEL,
            messages=[{"role": "user", "content": "before"}],
            stream=True,
            max_tokens=20,
        )
        pieces = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                if not started.is_set():
                    started.set()
                    await release.wait()
        result.append("".join(pieces))


async def health(http: Any) -> None:
    response = await http.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("layer", FAULTS)
async def test_a_fault_inside_one_connection_ends_only_that_connection(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    FAULTS[layer](monkeypatch)
    with trio.fail_after(120):
        async with running_daemon(CONFIG) as d, d.http() as inference, d.http(admin=True) as admin:
            # Opened before the fault: a keep-alive connection on each listener, and another streaming chat.
            await health(inference)
            await health(admin)
            other_started, release = trio.Event(), trio.Event()
            other_text: list[str] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(streaming_chat, d, other_started, release, other_text)
                await other_started.wait()

                victim = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
                async with victim:
                    await victim.send_all(chat_request(d.api_key))
                    head = await read_until(victim, b"tok")
                    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                    await wait_until(lambda: d.admission().active == 2)
                    await victim.send_all(MARKER + b"\r\n")
                    rest = await read_to_eof(victim)
                assert b"[DONE]" not in head + rest  # cut mid-answer, not finished
                await wait_until(lambda: d.admission().active == 1)  # the victim's slot is free

                await health(inference)  # the connections opened before the fault still work
                await health(admin)
                release.set()
            assert other_text == ["tok " * 20]

            # Opened after the fault: new connections on both listeners, and a whole chat.
            for is_admin in (False, True):
                async with d.http(admin=is_admin) as fresh:
                    await health(fresh)
            async with d.client() as client:
                reply = await client.chat.completions.create(
                    model=MOCK_MODEL,
                    messages=[{"role": "user", "content": "after"}],
                    max_tokens=3,
                )
            assert reply.choices[0].message.content == "tok tok tok "
            await wait_until(lambda: d.admission().active == 0 and len(d.daemon.inflight) == 0)
            assert d.admission().queued == 0
            assert d.backend_status()["cancelled"] == 1

            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            [error] = errors
            assert re.fullmatch(rf"connection c{d.inference_port}-\d+ failed; closed it", error.getMessage())
            assert error.exc_info is not None
            group = error.exc_info[1]
            assert isinstance(group, BaseExceptionGroup)
            assert group.subgroup(EXPECTED[layer]) is not None

            d.request_stop()
            await wait_until(lambda: d.daemon.state is DaemonState.STOPPED)
