"""Every status line carries its standard reason phrase (h11 on its own sends ``HTTP/1.1 404 ``)."""

from __future__ import annotations

import trio

from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon
from tests.reliability.raw_http import exchange

REQUESTS = [
    (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"),
    (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 401 Unauthorized"),
    (
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TEST_KEY.encode() + b"\r\n\r\n",
        "HTTP/1.1 404 Not Found",
    ),
    (b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
]


async def test_status_lines_carry_their_reason_phrase(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(keyed_config(mock_config())) as d:
            for request, status_line in REQUESTS:
                responses = (await exchange(d.inference_port, request, idle_s=1)).responses
                assert responses[0].status_line == status_line
