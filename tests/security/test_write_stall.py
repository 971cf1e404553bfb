"""Threat: a client that stops reading holds an admission slot (and a generation) forever.

Defence: every write is bounded by ``write_timeout_s``; past it the request is cut off, its generation
cancelled and its slot freed. The client here is a raw socket with a small receive buffer that sends a
streaming request for a multi-megabyte answer and never reads a byte. On the autojump clock the stalled write
waits exactly the write timeout (virtual time), so the test is deterministic and fast.
"""

from __future__ import annotations

import json
import socket

import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon, wait_until

#: 2,000 tokens of 4 KiB: far more than the kernel's socket buffers on both ends can hold.
BIG_REPLY = ["x" * 4096] * 2000


def streaming_request(port: int) -> bytes:
    body = json.dumps(
        {"model": MOCK_MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def test_reader_that_stalls_is_cut_off_and_its_slot_freed(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=0, reply=BIG_REPLY, server={"write_timeout_s": 5})
    with trio.fail_after(120):
        async with running_daemon(config) as d:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with sock:
                await sock.connect(("127.0.0.1", d.inference_port))
                await sock.send(streaming_request(d.inference_port))
                await wait_until(lambda: d.backend_status()["started"] == 1)
                # Never read. The server's writes fill both buffers, then block until the write timeout.
                await wait_until(lambda: d.backend_status()["cancelled"] == 1)
                await wait_until(lambda: d.admission().active == 0)
                assert d.backend_status()["active"] == 0
                assert d.backend_status()["completed"] == 0
                # The slot is usable again at once (no queue: a leaked slot would be a 429).
                async with d.client() as client:
                    reply = await client.chat.completions.create(
                        model=MOCK_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2
                    )
                assert reply.choices[0].finish_reason == "length"
                # The stalled client was cut off: what it can still read is a truncated stream, then the end.
                received = await read_until_closed(sock)
                assert received.startswith(b"HTTP/1.1 200")
                assert b"data: [DONE]" not in received


async def read_until_closed(sock: trio.socket.SocketType) -> bytes:
    received = bytearray()
    try:
        while data := await sock.recv(65536):
            received += data
    except ConnectionResetError:
        pass
    return bytes(received)
