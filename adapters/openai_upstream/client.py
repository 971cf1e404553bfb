"""The HTTP client of the ``openai`` backend: httpcore's connections, kept per base URL, used directly.

httpcore is httpx's transport layer: the same HTTP/1.1 connections over h11, keep-alive, trio network backend
and per-request ``connect``/``read``/``write`` timeouts that ``httpx.AsyncHTTPTransport`` wraps. The backend
talks to it without httpx's model layer on top (URL parsing, header normalisation,
``httpx.Request``/``Response`` objects, exception re-mapping), which on a gateway hop that does little else
was a measurable share of the CPU each request costs (docs/benchmarks.md, P8). What httpx would add and a
fixed upstream does not need: redirects, cookies, auth flows, proxies from the environment, content decoding
(no ``Accept-Encoding`` is sent, so the upstream answers uncompressed).

`Connections` keeps each base URL's keep-alive connections itself, as httpcore's own
``AsyncHTTPConnection`` objects (its public per-connection class: connecting, HTTP/1.1 over h11, the
timeouts), on a stack of idle ones. httpcore's ``AsyncConnectionPool`` does the same for any number of
origins and HTTP/2 multiplexing, and pays for that on every request: a lock around a queue of waiting
requests, a pass over every connection to assign them (quadratic in the connections, with a socket check
each), a wrapper stream that runs that pass again when the response closes. One origin over HTTP/1.1 with
no connection limit (admission bounds concurrency) needs none of it: a request takes the most recently used
idle connection, checked exactly as httpcore checks one before reuse (keep-alive expiry, and a readable
socket, i.e. the server's close), or opens a new one; closing the response puts the connection back when
httpcore left it idle (a body read to its end), and drops it otherwise (the upstream sees the disconnect).
The other idle connections are swept for expiry once every `SWEEP_S`.

`CoalescingStream` sits between httpcore and the socket: httpcore writes a request's headers and its body
in two writes, each a system call under its own timeout scope; the stream keeps what is written until
httpcore next reads (it always reads the answer after writing the request), then sends it in one write.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpcore
import trio
from httpcore import SOCKET_OPTION

#: Bound on closing a response or connections (shielded: a cancelled probe or request still releases them).
CLOSE_TIMEOUT_S = 5.0
#: How often every idle connection is checked for expiry; the one about to be reused is checked every time.
SWEEP_S = 1.0
#: Every exception httpcore raises for a failed request (the classes `errors.TRANSPORT_TABLE` sorts).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


class Connections:
    """One base URL's keep-alive HTTP/1.1 connections (see the module docstring).

    ``request`` sends one request and returns its response, the body still to be read; closing the response
    returns the connection. ``aclose`` closes every connection, idle or in use. Not thread-safe, and need not
    be: it runs on one trio event loop, and no method awaits between looking at the stack and changing it.
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext, max_keepalive_connections: int, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._network = CoalescingBackend(httpcore.TrioBackend())
        #: Idle connections, the most recently used last (reused first: its socket is the likeliest alive).
        self._idle: list[httpcore.AsyncHTTPConnection] = []
        #: Connections with a request under way (closed by `aclose` too).
        self._busy: set[httpcore.AsyncHTTPConnection] = set()
        #: Idle connections found expired, to be closed.
        self._stale: list[httpcore.AsyncHTTPConnection] = []
        self._next_sweep = 0.0

    async def request(self, request: httpcore.Request) -> UpstreamResponse:
        connection = await self._take(request.url.origin)
        self._busy.add(connection)
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            # httpcore closed the connection of a request that failed (or never connected): forget it.
            self._busy.discard(connection)
            raise
        return UpstreamResponse(response, self, connection)

    async def _take(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        """The most recently used idle connection still good to reuse, or a new (not yet connected) one; the
        idle ones found expired, or closed by the server, are closed."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            kept: list[httpcore.AsyncHTTPConnection] = []
            for connection in self._idle:
                (self._stale if connection.has_expired() else kept).append(connection)
            self._idle = kept
        found: httpcore.AsyncHTTPConnection | None = None
        while self._idle:
            connection = self._idle.pop()
            if connection.is_available() and not connection.has_expired():
                found = connection
                break
            self._stale.append(connection)
        if self._stale:
            stale, self._stale = self._stale, []
            await _close(stale)
        if found is not None:
            return found
        return httpcore.AsyncHTTPConnection(
            origin, ssl_context=self._ssl_context, keepalive_expiry=self._expiry, network_backend=self._network
        )

    async def release(self, connection: httpcore.AsyncHTTPConnection) -> None:
        """After its response closed: back on the idle stack if httpcore left it reusable (its body was read
        to its end), else closed (httpcore has already closed one whose body was not)."""
        self._busy.discard(connection)
        if connection.is_idle() and not connection.is_closed() and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        elif not connection.is_closed():
            await _close([connection])

    async def aclose(self) -> None:
        """Close every connection (the backend's stop)."""
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await _close(connections)


async def _close(connections: list[httpcore.AsyncHTTPConnection]) -> None:
    """Close ``connections``' sockets, shielded (a cancelled close would leak them) and bounded (a close
    returns at once; the bound is for a stuck one)."""
    with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
        for connection in connections:
            await connection.aclose()


class CoalescingStream(httpcore.AsyncNetworkStream):
    """A network stream whose writes wait for the next read and then go out as one (module docstring)."""

    __slots__ = ("_inner", "_pending", "_write_timeout")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._pending = b""
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface
        if self._pending:
            pending, self._pending = self._pending, b""
            await self._inner.write(pending, self._write_timeout)
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's interface
        self._pending += buffer
        self._write_timeout = timeout

    async def aclose(self) -> None:
        self._pending = b""
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        return CoalescingStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class CoalescingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's trio network backend, its TCP streams wrapped in `CoalescingStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return CoalescingStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class UpstreamResponse:
    """The answer to one request: status, headers (lowercased names) and the body, still to be read.

    It must be closed (`aclose`): a body that was not read to its end closes the connection instead of
    returning it to the pool, which is how the upstream learns that the client went away.
    """

    __slots__ = ("_connection", "_connections", "_headers", "_response", "status_code")

    def __init__(
        self, response: httpcore.Response, connections: Connections, connection: httpcore.AsyncHTTPConnection
    ) -> None:
        self._response = response
        self._connections = connections
        self._connection: httpcore.AsyncHTTPConnection | None = connection
        self._headers: dict[str, str] | None = None
        self.status_code: int = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._response.headers
            }
        return self._headers

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._response.aiter_stream()

    async def aread(self) -> bytes:
        return await self._response.aread()

    async def aclose(self) -> None:
        """Close the body (httpcore leaves the connection idle if it was read to its end, closes it if not)
        and hand the connection back. Idempotent."""
        await self._response.aclose()
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._connections.release(connection)


class Endpoint:
    """One base URL's request targets and fixed headers, prepared once (not parsed again per request)."""

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        url = httpcore.URL(base)
        port = url.port
        default_port = {b"http": 80, b"https": 443}.get(url.scheme)
        host = b"[" + url.host + b"]" if b":" in url.host else url.host  # an IPv6 literal keeps its brackets
        if port is not None and port != default_port:
            host += b":%d" % port
        self._base = base
        self._targets: dict[str, httpcore.URL] = {}
        self.headers: list[tuple[bytes, bytes]] = [(b"Host", host)]
        self.headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    def url(self, path: str) -> httpcore.URL:
        target = self._targets.get(path)
        if target is None:
            target = self._targets[path] = httpcore.URL(self._base + path)
        return target
