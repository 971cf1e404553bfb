"""The HTTP client of the ``openai`` backend: one httpcore connection pool per base URL, used directly.

httpcore is httpx's transport layer: the same connection pool, HTTP/1.1 keep-alive, trio backend (picked by
sniffio) and per-request ``connect``/``read``/``write``/``pool`` timeouts that ``httpx.AsyncHTTPTransport``
wraps. The backend talks to it without httpx's model layer on top (URL parsing, header normalisation,
``httpx.Request``/``Response`` objects, exception re-mapping), which on a gateway hop that does little else
was a measurable share of the CPU each request costs (docs/benchmarks.md, P8). What httpx would add and a
fixed upstream does not need: redirects, cookies, auth flows, proxies from the environment, content
decoding (no ``Accept-Encoding`` is sent, so the upstream answers uncompressed).

`Connections` overrides one private method of httpcore's pool, the pass that assigns waiting requests to
connections, run twice per request: httpcore's version is quadratic in the number of connections (it counts
the whole pool once per idle connection) and asks every connection's socket whether the server closed it -
a system call each, on every pass. This one is linear, checks the idle connection it is about to reuse
exactly as httpcore would (keep-alive expiry, then the socket), and sweeps the other idle ones once every
`SWEEP_S` (a busy connection cannot have expired: httpcore starts the keep-alive clock and reads the socket
for a close only while it is idle).
If a later httpcore renames the method, the override is simply not called: the pool stays correct, only
slower.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    from httpcore._async.interfaces import AsyncConnectionInterface

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


class Connections(httpcore.AsyncConnectionPool):
    """httpcore's connection pool with a linear request-assignment pass (see the module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + SWEEP_S
        kept: list[AsyncConnectionInterface] = []
        idle = 0
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.is_idle():
                if (sweep and connection.has_expired()) or idle >= self._max_keepalive_connections:
                    closing.append(connection)
                    continue
                idle += 1
            kept.append(connection)
        self._connections[:] = kept
        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            chosen = self._reusable(origin, closing)
            if chosen is None:
                if len(self._connections) >= self._max_connections:
                    continue  # waits for a connection (the backend never sets max_connections)
                chosen = self.create_connection(origin)
                self._connections.append(chosen)
            pool_request.assign_to_connection(chosen)
        return closing

    def _reusable(
        self, origin: httpcore.Origin, closing: list[AsyncConnectionInterface]
    ) -> AsyncConnectionInterface | None:
        """An idle connection to ``origin`` that is still good, checked as httpcore checks it (keep-alive
        expiry, and a readable socket, i.e. the server's close, while idle); the bad ones found go to
        ``closing``."""
        found: AsyncConnectionInterface | None = None
        expired: list[AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.can_handle_request(origin) and connection.is_available():
                if not connection.has_expired():
                    found = connection
                    break
                expired.append(connection)
        if expired:
            closing += expired
            self._connections[:] = [c for c in self._connections if c not in expired]
        return found


class UpstreamResponse:
    """The answer to one request: status, headers (lowercased names) and the body, still to be read.

    It must be closed (`aclose`): a body that was not read to its end closes the connection instead of
    returning it to the pool, which is how the upstream learns that the client went away.
    """

    __slots__ = ("_headers", "_response", "status_code")

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response
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
        await self._response.aclose()


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
