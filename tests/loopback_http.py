"""The server side of HTTP/1.1 on a loopback port (trio + h11), for the hand-written fake upstreams.

The fakes (`tests.upstream.scripted`, `tests.anthropic.fake_upstream`) each keep their own routes, scripts and
counters; this module holds only the transport they share: listening on a fresh ``127.0.0.1`` port, reading
one whole request at a time, and writing a response whole or piece by piece. It runs in the test's own
nursery, so the autojump clock drives every timeout.

Why not hypercorn: an ASGI app cannot observe the client closing the socket while it is blocked mid-response
as directly, and a hand-written server controls every byte of the stream (drops mid-body, hangs before the
headers, raw bytes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import h11
import trio


class Listening(Protocol):
    """A fake server: `serve_loopback` tells it its port."""

    port: int


async def serve_loopback(
    server: Listening,
    handle: Callable[[trio.SocketStream], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``handle`` for every connection to a fresh ``127.0.0.1`` port, set as ``server.port`` before it is
    reported started (so ``await nursery.start(fake.serve)`` returns with the port known)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    server.port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started()


class Dropped(Exception):
    """The script ends this connection here: mid-body, or without answering at all."""


@dataclass(frozen=True)
class Request:
    """One request as it came: header names lowercased, the body as raw bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ServerConnection:
    """One accepted connection, one request/response cycle after another (keep-alive)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._h11 = h11.Connection(h11.SERVER)

    async def read_request(self) -> Request | None:
        """The next whole request; None once the client closed the connection (or sent no request)."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some()
                if not data:
                    return None
                self._h11.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers = {k.decode().lower(): v.decode() for k, v in head.headers}
                return Request(head.method.decode(), head.target.decode(), headers, bytes(body))
            else:
                return None

    def next_cycle(self) -> bool:
        """Ready the connection for the client's next request; False when this exchange cannot be followed by
        one (the response was cut short, or either side asked to close)."""
        if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
            return False
        self._h11.start_next_cycle()
        return True

    async def send_whole(self, status: int, headers: Sequence[tuple[str, str]], payload: bytes) -> None:
        """A complete response with a ``content-length``."""
        await self.start_response(status, [*headers, ("content-length", str(len(payload)))])
        await self.send_data(payload)
        await self.end()

    async def start_response(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """The status line and headers of a response whose body follows piece by piece (`send_data`)."""
        await self._send(h11.Response(status_code=status, headers=list(headers)))

    async def send_data(self, data: bytes) -> None:
        await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def wait_for_close(self) -> None:
        """Block until the client closes its side (EOF or reset)."""
        try:
            while await self.stream.receive_some():
                pass
        except trio.BrokenResourceError:
            pass

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            await self.stream.send_all(data)
