"""The HTTP client of the ``openai`` backend: keep-alive HTTP/1.1 connections per base URL, on trio streams.

Why our own: the upstream is one configured server (vLLM, llama-server, another trinfer) speaking plain
HTTP/1.1, so what a client must do is small and fixed - connect (TCP, TLS for https), write a request, read a
response framed by ``Content-Length``, chunks or the end of the stream, keep the connection alive, and bound
every step by a timeout. A generic client pays for far more on every request: measured as client-side CPU per
keep-alive POST with a small JSON answer (``bench/client_cpu.py``, one run on a shared 2-core machine),
httpcore's connections as this backend used them cost ~320-350 us, h11 driven directly ~190-200 us, and this
client ~75-95 us. The response parser is `http1` (sans-IO, strict, tested against h11 as the reference); this
module is the I/O around it.

`Connections` keeps one base URL's connections: a stack of idle keep-alive ones, the most recently used on
top. A request takes the top one if it is still good - not idle for longer than ``keepalive_expiry``, and its
socket not readable (a readable idle socket means the server closed it, or sent bytes nobody asked for) - or
opens a new one; there is no connection limit (admission bounds concurrency). Once every `SWEEP_S` the rest of
the stack is checked for expiry too. The request (request line, headers, body) goes out in one write.

`UpstreamResponse` is the answer, its body still to be read. Closing it (always: ``aclose``) puts the
connection back on the stack when the body was read to its end and the response allows reuse; any other
close closes the socket, so the upstream sees the disconnect and stops generating - cancellation relies on
it. Closes are shielded and bounded by `CLOSE_TIMEOUT_S`.

Timeouts (`Timeouts`): ``connect`` bounds the TCP connect and TLS handshake together, ``write`` each write,
``read`` each read, i.e. the silence between two bytes of the answer. Every failure is one of the
`TransportError` classes below (`TRANSPORT_ERRORS`), which `errors.TRANSPORT_TABLE` sorts.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from .http1 import Head, ProtocolError, ResponseParser

#: Bound on closing a response or connections (shielded: a cancelled probe or request still releases them).
CLOSE_TIMEOUT_S = 5.0
#: How often every idle connection is checked for expiry; the one about to be reused is checked every time.
SWEEP_S = 1.0
#: The most bytes one socket read asks for.
READ_SIZE = 65536
#: The most request heads an `Endpoint` keeps prepared.
MAX_PREPARED = 64


class TransportError(Exception):
    """A request failed below HTTP: the connection could not be made, broke, timed out, or the server's
    answer was not HTTP/1.1."""


class Timeout(TransportError):
    """A step of the request took longer than its timeout."""


class ConnectTimeout(Timeout):
    """No connection (TCP, and TLS for https) within the connect timeout."""


class ReadTimeout(Timeout):
    """No byte of the answer within the read timeout."""


class WriteTimeout(Timeout):
    """The request could not be written within the write timeout."""


class NetworkError(TransportError):
    """The connection failed."""


class ConnectError(NetworkError):
    """The connection was refused, the name did not resolve, or the TLS handshake failed."""


class ReadError(NetworkError):
    """The connection broke (was reset) while the answer was read."""


class WriteError(NetworkError):
    """The connection broke while the request was written."""


class RemoteProtocolError(TransportError):
    """The server's answer is not valid HTTP/1.1, or the server closed the connection before it ended."""


class StaleConnection(RemoteProtocolError):
    """A kept-alive connection the server had closed (or was closing) when it was reused: nothing of an answer
    came back. The request may go once more, on a new connection (the backend does)."""


#: Everything a failed request raises (the classes `errors.TRANSPORT_TABLE` sorts).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (TransportError,)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request bounds in seconds (module docstring)."""

    connect: float
    read: float
    write: float


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a base URL's connections go."""

    tls: bool
    host: str
    port: int


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_TARGET = re.compile(r"[\x21-\x7e]+")


class RequestHead:
    """One request's line and headers as bytes, prepared once (`Endpoint.prepare`); `encode` adds the body."""

    __slots__ = ("_head", "origin", "target")

    def __init__(self, origin: Origin, target: bytes, head: bytes) -> None:
        self.origin = origin
        self.target = target
        self._head = head

    def encode(self, body: bytes | None) -> bytes:
        """The whole request: the head, ``Content-Length`` when there is a body, the blank line, the body."""
        if body is None:
            return self._head + b"\r\n"
        return b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body)


class Endpoint:
    """One base URL: its origin, fixed headers (``Host`` first, then ``headers``, e.g. the key) and prepared
    request heads (one per method, path and extra headers; not built again per request)."""

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base!r}")
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
        host = parts.hostname
        authority = f"[{host}]" if ":" in host else host  # an IPv6 literal keeps its brackets
        if port != default_port:
            authority += f":{port}"
        self.origin = Origin(tls=parts.scheme == "https", host=host, port=port)
        self._path = parts.path.rstrip("/")
        self.headers: list[tuple[bytes, bytes]] = [(b"Host", _encode_host(authority))]
        self.headers += [(_header_bytes(k, _TOKEN), _header_bytes(v, _VALUE)) for k, v in headers.items()]
        self._fixed = b"".join(b"%s: %s\r\n" % pair for pair in self.headers)
        self._heads: dict[tuple[str, str, tuple[tuple[bytes, bytes], ...]], RequestHead] = {}

    def prepare(self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> RequestHead:
        """The head of ``method {base path}{path}`` with the fixed headers, then ``headers``."""
        extra = tuple(headers)
        key = (method, path, extra)
        head = self._heads.get(key)
        if head is None:
            head = self._build(method, path, extra)
            if len(self._heads) < MAX_PREPARED:  # the backend's are a handful; a caller that varies more
                self._heads[key] = head  # (a header per request) builds the rest each time
        return head

    def _build(self, method: str, path: str, extra: tuple[tuple[bytes, bytes], ...]) -> RequestHead:
        target = self._path + path
        if _TOKEN.fullmatch(method) is None or _TARGET.fullmatch(target) is None:
            raise ValueError(f"not a valid request line: {method!r} {target!r}")
        for name, value in extra:
            _header_bytes(name.decode("latin-1"), _TOKEN)
            _header_bytes(value.decode("latin-1"), _VALUE)
        line = b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target.encode("ascii"))
        head = line + self._fixed + b"".join(b"%s: %s\r\n" % pair for pair in extra)
        return RequestHead(self.origin, target.encode("ascii"), head)


def _encode_host(authority: str) -> bytes:
    try:
        return authority.encode("ascii")
    except UnicodeEncodeError:
        return authority.encode("idna")


def _header_bytes(text: str, pattern: re.Pattern[str]) -> bytes:
    """``text`` as header bytes, refused when it could break the request's framing (CR, LF, controls)."""
    if pattern.fullmatch(text) is None:
        raise ValueError(f"not a valid header name or value: {text[:40]!r}")
    return text.encode("latin-1")


class _Connection:
    """One connection: its stream (TCP, or TLS over it), the raw socket (for the idle check), its origin."""

    __slots__ = ("expires", "origin", "socket", "stream")

    def __init__(self, stream: trio.abc.Stream, sock: trio.socket.SocketType, origin: Origin) -> None:
        self.stream = stream
        self.socket = sock
        self.origin = origin
        #: While idle: when it stops being reusable (``time.monotonic()``).
        self.expires = 0.0

    def closed_by_server(self) -> bool:
        """True when the idle socket is readable: an end of stream, an error, or bytes nobody asked for."""
        fd = self.socket.fileno()
        if _poll is None:  # pragma: no cover - platforms without poll (Windows)
            return bool(select.select([fd], [], [], 0)[0])
        poller = _poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    async def exchange(self, request: bytes, parser: ResponseParser, timeouts: Timeouts) -> Head:
        """Write ``request`` (one write, within the write timeout) and read the answer's head into ``parser``
        (each read within the read timeout). One cancel scope serves both phases, its deadline moved on: a
        scope is the dearest part of a trio timeout, and this is the hot path."""
        reading = False
        with trio.CancelScope(deadline=trio.current_time() + timeouts.write) as scope:
            try:
                await self.stream.send_all(request)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise WriteError(f"the connection broke while sending: {exc}") from exc
            reading = True
            try:
                while True:
                    scope.deadline = trio.current_time() + timeouts.read
                    await self._fill(parser)
                    head = parser.head()
                    if head is not None:
                        return head
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ReadError(f"the connection broke while reading: {exc}") from exc
            except ProtocolError as exc:
                raise RemoteProtocolError(str(exc)) from exc
        if reading:
            raise ReadTimeout(f"no byte of the answer within {timeouts.read:g} s")
        raise WriteTimeout(f"the request could not be written within {timeouts.write:g} s")

    async def _fill(self, parser: ResponseParser) -> None:
        """One read from the socket into ``parser`` (its end, when the server closed the connection)."""
        data = await self.stream.receive_some(READ_SIZE)
        if data:
            parser.feed(data)
        else:
            parser.feed_eof()

    async def read_body(self, parser: ResponseParser, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """Read until ``parser`` has body bytes to give (returned) or the body ended (None); each read
        within ``timeout``."""
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            try:
                while True:
                    await self._fill(parser)
                    piece = parser.body()
                    if piece:
                        return piece
                    if parser.done:
                        return None
                    scope.deadline = trio.current_time() + timeout
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise ReadError(f"the connection broke while reading: {exc}") from exc
            except ProtocolError as exc:
                raise RemoteProtocolError(str(exc)) from exc
        raise ReadTimeout(f"no byte of the answer within {timeout:g} s")


_poll = getattr(select, "poll", None)


async def _connect(origin: Origin, ssl_context: ssl.SSLContext, timeout: float) -> _Connection:  # noqa: ASYNC109
    """A new connection to ``origin``: TCP (no Nagle delay), then TLS for https, all within ``timeout``."""
    with trio.move_on_after(timeout):
        try:
            tcp = await trio.open_tcp_stream(origin.host, origin.port)
        except OSError as exc:
            raise ConnectError(f"could not connect to {origin.host}:{origin.port}: {exc}") from exc
        try:
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            stream: trio.abc.Stream = tcp
            if origin.tls:
                stream = trio.SSLStream(tcp, ssl_context, server_hostname=origin.host, https_compatible=True)
                await stream.do_handshake()
        except BaseException as exc:
            await trio.aclose_forcefully(tcp)
            if isinstance(exc, trio.BrokenResourceError | OSError):
                raise ConnectError(f"the TLS handshake with {origin.host} failed: {exc}") from exc
            raise
        return _Connection(stream, tcp.socket, origin)
    raise ConnectTimeout(f"no connection to {origin.host}:{origin.port} within {timeout:g} s")


async def _close(connections: Sequence[_Connection]) -> None:
    """Close ``connections``' streams, shielded (a cancelled close would leak them) and bounded (a TCP close
    returns at once; a TLS one sends its close_notify first, and the bound is for one that is stuck - trio
    closes the socket whatever happens)."""
    with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
        for connection in connections:
            await connection.stream.aclose()


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
        #: Idle connections, the most recently used last (reused first: its socket is the likeliest alive).
        self._idle: list[_Connection] = []
        #: Connections with a request under way (closed by `aclose` too).
        self._busy: set[_Connection] = set()
        self._next_sweep = 0.0

    @property
    def idle(self) -> int:
        """How many idle connections are kept."""
        return len(self._idle)

    async def request(self, head: RequestHead, body: bytes | None, timeouts: Timeouts) -> UpstreamResponse:
        """Send ``head`` and ``body`` (one write) and read the answer's head; the body is left to read.

        Raises one of `TRANSPORT_ERRORS` when the request fails before the answer's head arrived:
        `StaleConnection` when that was a reused connection the server had closed.
        """
        connection, stale = self._take(head.origin)
        if stale:
            await _close(stale)
        reused = connection is not None
        if connection is None:
            connection = await _connect(head.origin, self._ssl_context, timeouts.connect)
        self._busy.add(connection)
        parser = ResponseParser()
        try:
            answer = await connection.exchange(head.encode(body), parser, timeouts)
        except BaseException as exc:
            self._busy.discard(connection)
            await _close([connection])
            if reused and not parser.received and isinstance(exc, NetworkError | RemoteProtocolError):
                # The idle connections left are older than this one, which the server had closed: drop them
                # too, so the request goes once more on a new connection.
                older, self._idle = self._idle, []
                await _close(older)
                raise StaleConnection(f"the server had closed the kept-alive connection ({exc})") from exc
            raise
        return UpstreamResponse(answer, parser, connection, self, timeouts.read)

    def _take(self, origin: Origin) -> tuple[_Connection | None, list[_Connection]]:
        """The most recently used idle connection to ``origin`` still good to reuse (or None), and the idle
        ones found expired or closed by the server (to be closed)."""
        now = time.monotonic()
        stale: list[_Connection] = []
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_S
            kept: list[_Connection] = []
            for connection in self._idle:
                (stale if connection.expires <= now else kept).append(connection)
            self._idle = kept
        while self._idle:
            connection = self._idle.pop()
            if connection.origin == origin and connection.expires > now and not connection.closed_by_server():
                return connection, stale
            stale.append(connection)
        return None, stale

    async def release(self, connection: _Connection, reusable: bool) -> None:
        """After its response closed: back on the idle stack when ``reusable`` (the body was read to its end
        and the answer allows another request), else closed (the upstream sees the disconnect)."""
        if connection not in self._busy:
            return  # `aclose` closed it meanwhile
        self._busy.discard(connection)
        if reusable and len(self._idle) < self._max_idle:
            connection.expires = time.monotonic() + self._expiry
            self._idle.append(connection)
        else:
            await _close([connection])

    async def aclose(self) -> None:
        """Close every connection (the backend's stop)."""
        connections = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await _close(connections)


class UpstreamResponse:
    """The answer to one request: status, headers (lowercased names, repeated ones joined with ``", "``) and
    the body, still to be read: `aiter_bytes` (pieces as the socket reads deliver them, de-chunked) or `aread`.

    It must be closed (`aclose`): a body that was not read to its end closes the connection instead of
    returning it to the pool, which is how the upstream learns that the client went away.
    """

    __slots__ = ("_connection", "_connections", "_head", "_parser", "_read_timeout", "status_code")

    def __init__(
        self,
        head: Head,
        parser: ResponseParser,
        connection: _Connection,
        connections: Connections,
        read_timeout: float,
    ) -> None:
        self._head = head
        self._parser = parser
        self._connection: _Connection | None = connection
        self._connections = connections
        self._read_timeout = read_timeout
        self.status_code: int = head.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._head.mapping

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return _Body(self)

    async def aread(self) -> bytes:
        """The rest of the body, whole."""
        pieces = []
        while (piece := await self.next_piece()) is not None:
            pieces.append(piece)
        return b"".join(pieces)

    async def next_piece(self) -> bytes | None:
        """The next non-empty piece of the body, or None at its end."""
        parser = self._parser
        connection = self._connection
        if connection is None and not parser.done:
            raise ReadError("the response was closed before its body was read")
        try:
            piece = parser.body()
        except ProtocolError as exc:
            raise RemoteProtocolError(str(exc)) from exc
        if piece:
            return piece
        if parser.done or connection is None:
            return None
        return await connection.read_body(parser, self._read_timeout)

    async def aclose(self) -> None:
        """Hand the connection back: kept when the body was read to its end, else closed. Idempotent."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._connections.release(connection, self._parser.reusable)


class _Body:
    """`UpstreamResponse.aiter_bytes`: a plain async iterator (not a generator: leaving a loop over it early
    leaves nothing for the garbage collector to finalize)."""

    __slots__ = ("_response",)

    def __init__(self, response: UpstreamResponse) -> None:
        self._response = response

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        piece = await self._response.next_piece()
        if piece is None:
            raise StopAsyncIteration
        return piece
