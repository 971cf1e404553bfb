"""Hostile connections: HTTP/2, malformed framing, bad Host headers, WebSocket clients that stop reading.

Each test attacks a running daemon over real sockets and ends by checking it is unharmed (`assert_unharmed`:
both listeners answer ``/health``, a chat request completes, no admission slot or in-flight request is left,
nothing was logged as an error). The same attacks against a real daemon process, ending with SIGTERM and exit
status 0, are in ``test_hostile_process.py``. All in-process tests run on the autojump clock.
"""

from __future__ import annotations

import json
import logging

import h2.config
import h2.connection
import pytest
import trio
from trio_websocket import ConnectionClosed

from proxy.daemon import DaemonState
from tests.daemon_harness import MOCK_MODEL, RunningDaemon, keyed_config, mock_config, running_daemon, wait_until
from tests.reliability.raw_http import exchange
from tests.ws.wsclient import connect, create

CONFIG = keyed_config(mock_config(server={"write_timeout_s": 5}))


async def assert_unharmed(d: RunningDaemon, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon still serves both listeners, holds no slot or request, and logged no error."""
    for admin in (False, True):
        async with d.http(admin=admin) as http:
            assert (await http.get("/health")).status_code == 200
    async with d.client() as client:
        messages = [{"role": "user", "content": "ok"}]
        reply = await client.chat.completions.create(
            model=MOCK_MODEL,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=2,
        )
    assert reply.choices[0].message.content
    await wait_until(lambda: d.admission().active == 0 and len(d.daemon.inflight) == 0)
    assert d.admission().queued == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def upgrade_request(path: bytes = b"/v1/ws", host: bytes = b"x", extra: bytes = b"") -> bytes:
    """A WebSocket upgrade request (``extra``: more header lines, each ending in CRLF)."""
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def h2_request(key: str) -> tuple[bytes, bytes]:
    """An HTTP/2 prior-knowledge POST: (preface + SETTINGS + HEADERS, then its DATA frame)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":scheme", "http"),
            (":authority", "127.0.0.1"),
            ("content-type", "application/json"),
            ("authorization", f"Bearer {key}"),
        ],
    )
    head = conn.data_to_send()
    conn.send_data(1, json.dumps({"model": MOCK_MODEL, "messages": []}).encode(), end_stream=True)
    return head, conn.data_to_send()


@pytest.mark.parametrize("admin", [False, True], ids=["inference", "admin"])
async def test_http2_prior_knowledge_gets_505_and_the_daemon_lives(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, admin: bool
) -> None:
    # hypercorn's HTTP/2 code answered 401 before the body and then raised KeyError on the DATA frame, which
    # ended every listener. HTTP/2 is refused instead, on both listeners.
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            port = d.admin_port if admin else d.inference_port
            result = await exchange(port, *h2_request("wrong-key"), between_s=1)
            assert result.closed
            [response] = result.responses
            assert response.status_line == "HTTP/1.1 505 HTTP Version Not Supported"
            assert response.headers["connection"] == "close"
            assert response.error()["code"] == "http_version_not_supported"
            await assert_unharmed(d, caplog)


async def test_an_h2c_upgrade_is_ignored_and_served_over_http11(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    )
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            result = await exchange(d.inference_port, request, idle_s=1)
            [response] = result.responses
            assert response.status_line == "HTTP/1.1 200 OK"
            assert json.loads(response.body) == {"status": "ok"}
            await assert_unharmed(d, caplog)


HIDDEN = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
MALFORMED = {
    "bad request line": (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    "header section over the limit": (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        431,
        "headers_too_large",
    ),
    "unsupported transfer coding": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
        "not_implemented",
    ),
    "content-length with transfer-encoding, a request hidden in the body": (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
        "ambiguous_framing",
    ),
    "chunked HTTP/1.0": (
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN,
        400,
        "bad_request",
    ),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_framing_gets_one_openai_error_and_a_close(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, raw: tuple[bytes, int, str]
) -> None:
    data, status, code = raw
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            result = await exchange(d.inference_port, data)
            assert result.closed
            [response] = result.responses  # a request hidden after the first is never served
            assert response.status == status
            assert response.status_line.startswith(f"HTTP/1.1 {status} ") and len(response.status_line) > 13
            assert response.headers["connection"] == "close"
            error = response.error()
            assert (error["type"], error["code"]) == ("invalid_request_error", code)
            await assert_unharmed(d, caplog)


BAD_HOSTS = ["a..b", "[::1", "x" * 300, "host name", "[::1]x", "example.com:99999", "é.example"]
GOOD_HOSTS = ["127.0.0.1", "localhost:8080", "[::1]:80", "example.com.", "my_host.local", ""]


@pytest.mark.parametrize("host", BAD_HOSTS)
async def test_a_malformed_host_header_is_400_on_every_route_never_500(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    raw_host = host.encode("latin-1", "replace") if host.isascii() else host.encode("utf-8")
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            for port, path in [
                (d.inference_port, b"/health"),
                (d.inference_port, b"/v1/models"),
                (d.admin_port, b"/health"),
                (d.admin_port, b"/ready"),
            ]:
                result = await exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: " + raw_host + b"\r\n\r\n")
                [response] = result.responses
                assert response.status_line == "HTTP/1.1 400 Bad Request", (path, response)
                assert response.error()["code"] == "invalid_host"
            [response] = (await exchange(d.inference_port, upgrade_request(host=raw_host))).responses
            assert response.status == 400
            assert response.error()["code"] == "invalid_host"
            await assert_unharmed(d, caplog)


async def test_well_formed_host_headers_are_served(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            for host in GOOD_HOSTS:
                request = f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
                [response] = (await exchange(d.inference_port, request, idle_s=1)).responses
                assert response.status == 200, host
            await assert_unharmed(d, caplog)


async def test_a_websocket_upgrade_on_an_unknown_path_is_404_with_the_error_body(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade = upgrade_request(b"/v1/nowhere")
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            for port in (d.inference_port, d.admin_port):
                [response] = (await exchange(port, upgrade)).responses
                assert response.status_line == "HTTP/1.1 404 Not Found"
                assert response.error()["code"] == "unknown_url"
            await assert_unharmed(d, caplog)


@pytest.mark.parametrize("path", [b"/v1/ws", b"/v1/nowhere"], ids=["no key", "unknown path"])
async def test_a_frame_sent_after_a_refused_upgrade_is_dropped_and_the_daemon_lives(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, path: bytes
) -> None:
    # hypercorn answered the frame with a second response after the refusal; h11 raised out of the
    # connection's reader, which ended every listener.
    frame = b"\x81\x85abcd" + bytes(b ^ b"abcd"[i % 4] for i, b in enumerate(b"hello"))
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            for _ in range(3):
                result = await exchange(d.inference_port, upgrade_request(path), frame, between_s=1)
                [response] = result.responses
                assert response.status == (401 if path == b"/v1/ws" else 404)
                assert response.error()["code"] in {"invalid_api_key", "unknown_url"}
            await assert_unharmed(d, caplog)


async def test_two_authorization_headers_are_400_on_http_and_websocket(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        async with running_daemon(CONFIG) as d:
            good = f"Authorization: Bearer {d.api_key}\r\n".encode()
            requests = [
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + good + b"Authorization: Bearer other\r\n\r\n",
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + good + good + b"\r\n",
                upgrade_request(extra=good + good),
            ]
            for request in requests:
                [response] = (await exchange(d.inference_port, request)).responses
                assert response.status == 400
                assert response.error()["code"] == "duplicate_authorization"
            await assert_unharmed(d, caplog)


#: 400 chunks of 64 KiB per answer: far more than the socket buffers of both ends hold.
FLOOD = ["x" * 65536] * 400


async def test_a_websocket_that_stops_reading_with_many_frames_queued_frees_every_slot(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Two streams stall the socket; 40 more frames fill hypercorn's and quart's queues (10 each) behind the
    # blocked read loop. When the write timeout cut the socket, telling the app blocked on those queues for
    # good: the requests never ended, their slots stayed taken and the stop hung.
    config = keyed_config(mock_config(reply=FLOOD, active=2, queue=0, server={"write_timeout_s": 5}))
    with trio.fail_after(120):
        async with running_daemon(config) as d:
            async with connect(d, message_queue_size=1) as ws:
                await ws.send_message(create("one"))
                await ws.send_message(create("two"))
                await wait_until(lambda: d.admission().active == 2)
                for index in range(40):
                    await ws.send_message(create(f"more-{index}") if index % 2 else "{not json")
                await wait_until(lambda: d.admission().active == 0)
                await wait_until(lambda: len(d.daemon.inflight) == 0)
                with pytest.raises(ConnectionClosed):  # what the server wrote before it cut the socket
                    while True:
                        await ws.get_message()
            assert d.backend_status()["cancelled"] == 2
            await assert_unharmed(d, caplog)


async def test_the_stop_ends_while_a_websocket_that_sent_2000_bad_frames_reads_nothing(
    autojump_clock: trio.abc.Clock,
) -> None:
    # No request at all, only error frames the client never reads; the write timeout is far away (60 s), so
    # only the stop's own deadline can end the blocked writes.
    config = keyed_config(mock_config(server={"write_timeout_s": 60, "stop_timeout_s": 2}))
    with trio.fail_after(30):
        async with running_daemon(config) as d, connect(d, message_queue_size=1) as ws:
            with trio.move_on_after(5):  # the client's own send blocks once the server stops reading
                for _ in range(2000):
                    await ws.send_message("{not json" + "x" * 1000)
            d.request_stop()
            with trio.fail_after(2 + 10):  # stop_timeout_s plus a bound, though every write is still blocked
                await wait_until(lambda: d.daemon.state is DaemonState.STOPPED)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.get_message()
