"""Threat: a client exhausts memory (or a slot) by sending a huge request body.

Defence: ``max_body_bytes``. A declared ``Content-Length`` over the cap is refused from the headers alone, and a
chunked body is refused as soon as it crosses the cap: in both cases the client gets 413 with an OpenAI error
body while it has not finished sending (here: never does), so the server never buffers the whole body.
"""

from __future__ import annotations

import json

import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon

CAP = 1024


async def read_response(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, lower-cased headers, body) read from ``stream`` until it closes."""
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
        head, sep, body = bytes(data).partition(b"\r\n\r\n")
        if sep:
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            if len(body) >= int(headers.get("content-length", "-1")) >= 0:
                return int(lines[0].split()[1]), headers, body
    raise AssertionError(f"connection closed before a whole response: {bytes(data)!r}")


def request_head(port: int, extra: str) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def assert_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_too_large"
    assert str(CAP) in error["message"]


async def test_declared_length_over_the_cap_is_refused_before_the_body() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(server={"max_body_bytes": CAP})) as d:
            stream = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
            async with stream:
                await stream.send_all(request_head(d.inference_port, f"Content-Length: {CAP + 1}\r\n"))
                # Not one byte of the body is sent: the answer must come from the headers alone.
                assert_too_large(*await read_response(stream))
            assert d.backend_status()["started"] == 0


async def test_chunked_body_is_cut_when_it_crosses_the_cap() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(server={"max_body_bytes": CAP})) as d:
            stream = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
            async with stream:
                await stream.send_all(request_head(d.inference_port, "Transfer-Encoding: chunked\r\n"))
                piece = b'{"model": "' + b"m" * 500
                for _ in range(3):  # 1,500+ bytes: over the cap; the terminating chunk is never sent
                    await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
                assert_too_large(*await read_response(stream))
            assert d.backend_status()["started"] == 0


async def test_body_just_under_the_cap_is_served() -> None:
    messages = [{"role": "user", "content": "hi"}]
    body = json.dumps({"model": MOCK_MODEL, "messages": messages})
    padded = body[:-1] + ', "user": "' + "u" * (CAP - len(body) - 12) + '"}'
    assert len(padded) <= CAP
    with trio.fail_after(10):
        async with running_daemon(mock_config(server={"max_body_bytes": CAP})) as d, d.http() as http:
            response = await http.post(
                "/v1/chat/completions", content=padded, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"] == "hi"


async def test_a_body_that_stops_arriving_is_refused_after_the_timeout(autojump_clock: trio.abc.Clock) -> None:
    """A client cannot park a request by sending part of its body and then nothing (slowloris)."""
    with trio.fail_after(120):
        async with running_daemon(mock_config(server={"write_timeout_s": 10})) as d:
            stream = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
            async with stream:
                await stream.send_all(request_head(d.inference_port, "Content-Length: 100\r\n") + b'{"model":')
                status, headers, body = await read_response(stream)
    assert status == 408
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert headers["x-request-id"].startswith("req_")
    assert d.backend_status()["started"] == 0
