"""The ``openai`` backend's HTTP client (`adapters.openai_upstream.client`) over real loopback sockets.

Each test runs a small server in its own nursery (`tests.loopback_http`: h11 on the server side, or raw
bytes where the test needs control of every byte), so the autojump clock drives every timeout. What is
asserted is what either side can observe: the bytes the server received, how many connections it accepted,
whether it saw the client close, and what the client's calls return or raise.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from adapters.openai_upstream.client import (
    CLOSE_TIMEOUT_S,
    ConnectError,
    Connections,
    ConnectTimeout,
    Endpoint,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    StaleConnection,
    Timeouts,
    WriteError,
    WriteTimeout,
)
from adapters.openai_upstream.errors import Kind, transport_failure
from tests.loopback_http import ServerConnection, serve_loopback

TIMEOUTS = Timeouts(connect=5.0, read=30.0, write=30.0)
JSON = ((b"Content-Type", b"application/json"),)
Handler = Callable[[trio.SocketStream], Awaitable[None]]


class Server:
    """A loopback server running ``handler`` for each connection; it counts them and what they received."""

    def __init__(self, handler: Handler) -> None:
        self.port = 0
        self.connections = 0
        self.closed_by_client = trio.Event()
        self._handler = handler

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_loopback(self, self._handle, task_status=task_status)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        # The client going away (or failing its TLS handshake) is what some tests are about.
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await self._handler(stream)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


async def started(nursery: trio.Nursery, handler: Handler) -> Server:
    server = Server(handler)
    await nursery.start(server.serve)
    return server


def pool(*, expiry: float = 4.0, tls: ssl.SSLContext | None = None) -> Connections:
    context = tls or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return Connections(ssl_context=context, max_keepalive_connections=8, keepalive_expiry=expiry)


async def post(connections: Connections, endpoint: Endpoint, body: bytes = b"{}") -> bytes:
    response = await connections.request(endpoint.prepare("POST", "/chat/completions", JSON), body, TIMEOUTS)
    try:
        assert response.status_code == 200
        return await response.aread()
    finally:
        await response.aclose()


def echo_server(*, chunked: bool = False, close_after: int | None = None) -> Handler:
    """Answers each request with its own body (``Content-Length``, or chunked in two pieces), keeping the
    connection alive; ``close_after`` answers that many requests, then closes without answering the next."""

    async def handler(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        answered = 0
        while (request := await http.read_request()) is not None:
            if close_after is not None and answered == close_after:
                return
            if chunked:
                await http.start_response(200, [("content-type", "application/json")])
                half = len(request.body) // 2
                await http.send_data(request.body[:half])
                await http.send_data(request.body[half:])
                await http.end()
            else:
                await http.send_whole(200, [("content-type", "application/json")], request.body)
            answered += 1
            if not http.next_cycle():
                return

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_keep_alive_carries_every_request_on_one_connection(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery, chunked: bool
) -> None:
    server = await started(nursery, echo_server(chunked=chunked))
    connections, endpoint = pool(), Endpoint(server.base, {"Authorization": "Bearer k"})
    for number in range(10):
        assert await post(connections, endpoint, b'{"n":%d}' % number) == b'{"n":%d}' % number
    assert (server.connections, connections.idle) == (1, 1)
    await connections.aclose()


async def test_the_request_goes_out_as_one_write_with_its_headers_in_order(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    received: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        received.append(await stream.receive_some())
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.receive_some()

    server = await started(nursery, handler)
    connections = pool()
    assert await post(connections, Endpoint(server.base, {"Authorization": "Bearer k"}), b'{"a":1}') == b"ok"
    assert received == [
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer k\r\n"
        b'Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}' % server.port
    ]
    await connections.aclose()


async def test_an_idle_connection_the_server_closed_is_seen_before_reuse_and_replaced(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def answer_once(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        request = await http.read_request()
        assert request is not None
        await http.send_whole(200, [], b"ok")  # keep-alive announced, then closed while idle

    server = await started(nursery, answer_once)
    connections, endpoint = pool(), Endpoint(server.base, {})
    for _ in range(3):
        assert await post(connections, endpoint) == b"ok"
        await trio.sleep(0.01)  # the server's close arrives while the connection is idle
    assert server.connections == 3
    await connections.aclose()


async def test_a_reused_connection_closed_before_answering_is_stale_and_the_next_try_opens_a_new_one(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    """The backend's ``_STALE_CONNECTION`` path: the request is sent again, and it must not meet another
    kept-alive connection (tests/upstream/test_errors.py runs the same through a whole trinfer)."""
    server = await started(nursery, echo_server(close_after=1))
    connections, endpoint = pool(), Endpoint(server.base, {})
    assert await post(connections, endpoint) == b"{}"
    with pytest.raises(StaleConnection) as caught:
        await post(connections, endpoint)
    assert transport_failure(caught.value).kind is Kind.BROKEN
    assert connections.idle == 0
    assert await post(connections, endpoint, b"again") == b"again"
    assert server.connections == 2
    await connections.aclose()


async def test_a_fresh_connection_closed_before_answering_is_a_protocol_error_not_stale(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = await started(nursery, echo_server(close_after=0))
    with pytest.raises(RemoteProtocolError, match="without answering") as caught:
        await post(pool(), Endpoint(server.base, {}))
    assert not isinstance(caught.value, StaleConnection)
    assert transport_failure(caught.value).reason == "the server closed the connection"


async def test_a_refused_connection_is_a_connect_error(autojump_clock: trio.abc.Clock) -> None:
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: the kernel refuses connections
        with pytest.raises(ConnectError) as caught:
            await post(pool(), Endpoint(f"http://127.0.0.1:{port}/v1", {}))
    failure = transport_failure(caught.value)
    assert (failure.kind, failure.reason) == (Kind.UNREACHABLE, "connection refused or failed")


async def test_connecting_includes_the_tls_handshake_and_is_bounded_by_the_connect_timeout(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accepts TCP, never answers the TLS hello

    server = await started(nursery, silent)
    start = trio.current_time()
    with pytest.raises(ConnectTimeout) as caught:
        await post(pool(), Endpoint(f"https://127.0.0.1:{server.port}/v1", {}))
    assert trio.current_time() - start == pytest.approx(TIMEOUTS.connect)
    assert transport_failure(caught.value).kind is Kind.UNREACHABLE


async def test_no_answer_within_the_read_timeout_is_a_read_timeout(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def mute(stream: trio.SocketStream) -> None:
        await ServerConnection(stream).read_request()
        await trio.sleep_forever()

    server = await started(nursery, mute)
    start = trio.current_time()
    with pytest.raises(ReadTimeout) as caught:
        await post(pool(), Endpoint(server.base, {}))
    assert trio.current_time() - start == pytest.approx(TIMEOUTS.read)
    assert transport_failure(caught.value).kind is Kind.FAILED


async def test_the_read_timeout_bounds_each_silence_not_the_whole_body(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def slow(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        await http.read_request()
        await http.start_response(200, [("content-type", "text/event-stream")])
        for _ in range(4):
            await trio.sleep(TIMEOUTS.read * 0.9)  # each silence under the bound, all of them well over it
            await http.send_data(b"data: x\n\n")
        await trio.sleep_forever()

    server = await started(nursery, slow)
    connections = pool()
    response = await connections.request(Endpoint(server.base, {}).prepare("GET", "/s"), None, TIMEOUTS)
    pieces = []
    with pytest.raises(ReadTimeout):
        async for piece in response.aiter_bytes():
            pieces.append(piece)
    await response.aclose()
    assert pieces == [b"data: x\n\n"] * 4
    assert connections.idle == 0


async def test_a_connection_reset_while_sending_is_a_write_error(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def rude(stream: trio.SocketStream) -> None:
        await stream.receive_some()  # then closes with most of the request unread: a reset

    server = await started(nursery, rude)
    with pytest.raises(WriteError) as caught:
        await post(pool(), Endpoint(server.base, {}), b"x" * (64 * 1024 * 1024))
    failure = transport_failure(caught.value)
    assert (failure.kind, failure.reason) == (Kind.BROKEN, "connection reset while sending")


async def test_a_connection_reset_before_the_answer_is_a_read_error(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def resetting(stream: trio.SocketStream) -> None:
        await ServerConnection(stream).read_request()
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

    server = await started(nursery, resetting)
    with pytest.raises(ReadError) as caught:
        await post(pool(), Endpoint(server.base, {}))
    failure = transport_failure(caught.value)
    assert (failure.kind, failure.reason) == (Kind.BROKEN, "connection reset")


async def test_a_request_the_server_does_not_read_is_bounded_by_the_write_timeout(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def deaf(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    server = await started(nursery, deaf)
    with pytest.raises(WriteTimeout) as caught:
        await post(pool(), Endpoint(server.base, {}), b"x" * (64 * 1024 * 1024))  # more than the buffers hold
    assert transport_failure(caught.value).kind is Kind.FAILED


async def test_chunk_framing_that_arrives_alone_is_waited_for_within_the_read_timeout_each_time(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    async def trickling(stream: trio.SocketStream) -> None:
        await ServerConnection(stream).read_request()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"3", b"\r\n", b"abc", b"\r", b"\n", b"0\r\n", b"\r\n"):
            await trio.sleep(TIMEOUTS.read * 0.9)
            await stream.send_all(part)
        await stream.receive_some()

    server = await started(nursery, trickling)
    connections = pool()
    assert await post(connections, Endpoint(server.base, {})) == b"abc"
    assert connections.idle == 1
    await connections.aclose()


async def test_chunked_sse_is_relayed_piece_by_piece_as_it_arrives(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    events = [b'data: {"n":%d}\n\n' % n for n in range(5)]
    relayed = trio.Semaphore(0)

    async def streaming(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        await http.read_request()
        await http.start_response(200, [("content-type", "text/event-stream")])
        for event in events:
            await http.send_data(event)
            await relayed.acquire()  # the next event only once the client has this one
        await http.end()
        await http.wait_for_close()

    server = await started(nursery, streaming)
    connections = pool()
    response = await connections.request(Endpoint(server.base, {}).prepare("POST", "/c", JSON), b"{}", TIMEOUTS)
    assert response.headers["content-type"] == "text/event-stream"
    pieces = []
    async for piece in response.aiter_bytes():
        pieces.append(piece)
        relayed.release()
    await response.aclose()
    assert pieces == events
    assert connections.idle == 1  # read to its end: kept
    await connections.aclose()


async def test_a_body_closed_before_its_end_closes_the_socket_and_the_server_sees_it(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server_saw_close = trio.Event()

    async def streaming(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        await http.read_request()
        await http.start_response(200, [("content-type", "text/event-stream")])
        await http.send_data(b"data: first\n\n")
        await http.wait_for_close()
        server_saw_close.set()

    server = await started(nursery, streaming)
    connections = pool()
    response = await connections.request(Endpoint(server.base, {}).prepare("POST", "/c", JSON), b"{}", TIMEOUTS)
    async for piece in response.aiter_bytes():
        assert piece == b"data: first\n\n"
        break
    await response.aclose()
    await response.aclose()  # idempotent
    with trio.fail_after(1):
        await server_saw_close.wait()
    assert connections.idle == 0
    with pytest.raises(ReadError, match="closed"):
        await response.aread()


async def test_a_cancelled_request_closes_its_connection(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server_saw_close = trio.Event()

    async def hanging(stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        await http.read_request()
        await http.wait_for_close()
        server_saw_close.set()

    server = await started(nursery, hanging)
    connections = pool()
    with trio.move_on_after(1):
        await post(connections, Endpoint(server.base, {}))
    with trio.fail_after(1):
        await server_saw_close.wait()
    assert connections.idle == 0


async def test_an_answer_that_asks_to_close_or_is_read_to_eof_is_not_reused(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n\r\nto the end",
    ]

    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(answers[server.connections - 1])

    server = await started(nursery, handler)
    connections, endpoint = pool(), Endpoint(server.base, {})
    assert await post(connections, endpoint) == b"ok"
    assert connections.idle == 0
    assert await post(connections, endpoint) == b"to the end"
    assert (connections.idle, server.connections) == (0, 2)


async def test_a_malformed_answer_or_one_cut_short_is_a_protocol_error(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ]

    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some()
        await stream.send_all(answers[server.connections - 1])

    server = await started(nursery, handler)
    connections, endpoint = pool(), Endpoint(server.base, {})
    for _ in answers:
        with pytest.raises(RemoteProtocolError) as caught:
            await post(connections, endpoint)
        assert transport_failure(caught.value).kind is Kind.BROKEN
    assert connections.idle == 0


async def test_expired_idle_connections_are_not_reused(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    server = await started(nursery, echo_server())
    connections, endpoint = pool(expiry=0.0), Endpoint(server.base, {})
    for _ in range(3):
        assert await post(connections, endpoint) == b"{}"
    assert server.connections == 3
    await connections.aclose()


async def test_aclose_closes_idle_and_busy_connections(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery
) -> None:
    closed = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal closed
        http = ServerConnection(stream)
        await http.read_request()
        if server.connections == 1:
            await http.start_response(200, [])  # the body never comes
        else:
            await http.send_whole(200, [], b"ok")
        await http.wait_for_close()
        closed += 1

    server = await started(nursery, handler)
    connections, endpoint = pool(), Endpoint(server.base, {})
    busy = await connections.request(endpoint.prepare("GET", "/busy"), None, TIMEOUTS)
    read = await connections.request(endpoint.prepare("GET", "/read"), None, TIMEOUTS)
    assert await read.aread() == b"ok"  # read to its end, not closed yet
    assert await post(connections, endpoint) == b"ok"  # on a third connection, idle now
    assert connections.idle == 1
    with trio.fail_after(CLOSE_TIMEOUT_S):
        await connections.aclose()
        await trio.testing.wait_all_tasks_blocked()
    assert closed == 3
    with pytest.raises(ReadError):
        await busy.aread()
    await busy.aclose()
    await read.aclose()
    assert connections.idle == 0  # a connection the pool closed is not put back


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the system's openssl (no download)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_goes_through_tls_with_the_context_given(
    autojump_clock: trio.abc.Clock, nursery: trio.Nursery, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def tls_echo(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        http = ServerConnection(tls)  # type: ignore[arg-type]  # any trio stream will do
        while (request := await http.read_request()) is not None:
            await http.send_whole(200, [], request.body)
            if not http.next_cycle():
                return

    server = await started(nursery, tls_echo)
    base = f"https://127.0.0.1:{server.port}/v1"
    trusting = ssl.create_default_context(cafile=str(cert))
    connections = pool(tls=trusting)
    for body in (b"one", b"two"):
        assert await post(connections, Endpoint(base, {}), body) == body
    assert server.connections == 1
    await connections.aclose()
    with pytest.raises(ConnectError, match="TLS"):
        await post(pool(tls=ssl.create_default_context()), Endpoint(base, {}))  # not trusted


def test_an_endpoint_refuses_what_would_break_the_request_framing() -> None:
    with pytest.raises(ValueError, match="header"):
        Endpoint("http://127.0.0.1:8000/v1", {"Authorization": "Bearer k\r\nX-Injected: 1"})
    endpoint = Endpoint("http://127.0.0.1:8000/v1", {})
    with pytest.raises(ValueError, match="request line"):
        endpoint.prepare("GET", "/models?x y")
    with pytest.raises(ValueError, match="header"):
        endpoint.prepare("POST", "/c", ((b"X-A", b"a\nb"),))
    with pytest.raises(ValueError, match="URL"):
        Endpoint("ftp://127.0.0.1/v1", {})
    assert Endpoint("http://b\u00fccher.example/v1", {}).headers == [(b"Host", b"xn--bcher-kva.example")]
