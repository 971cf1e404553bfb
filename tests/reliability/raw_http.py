"""Raw HTTP/1.1 on a socket, for tests that send what no HTTP client library would: bytes in, responses out.

`exchange` writes bytes, reads until the server closes (or ``idle_s`` of silence), and `parse_responses`
splits what came back into responses (Content-Length bodies, which is all the daemon sends on these paths).
Callers guard them with ``trio.fail_after``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import trio


@dataclass(frozen=True)
class RawResponse:
    status_line: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    def error(self) -> dict[str, Any]:
        """The OpenAI error object of the body (fails the test if the body is not one)."""
        parsed = json.loads(self.body)
        assert set(parsed) == {"error"}, parsed
        error: dict[str, Any] = parsed["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        return error


@dataclass(frozen=True)
class Exchange:
    responses: list[RawResponse]
    closed: bool  # the server closed the connection (EOF or reset) rather than going quiet


async def exchange(port: int, *parts: bytes, idle_s: float = 5.0, between_s: float = 0.0) -> Exchange:
    """Send ``parts`` (``between_s`` apart, reading meanwhile), then read until the server closes the
    connection or stays silent for ``idle_s``."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    data = b""
    closed = False
    async with stream:

        async def read_for(seconds: float) -> bool:
            nonlocal data
            with trio.move_on_after(seconds):
                while True:
                    try:
                        chunk = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        return True
                    if not chunk:
                        return True
                    data += chunk
            return False

        for index, part in enumerate(parts):
            try:
                await stream.send_all(part)
            except trio.BrokenResourceError:
                closed = True
                break
            if index < len(parts) - 1 and await read_for(between_s):
                closed = True
                break
        if not closed:
            closed = await read_for(idle_s)
    return Exchange(parse_responses(data), closed)


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every whole response in ``data``, in order."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers.get("content-length", "0"))
        assert len(rest) >= length, f"truncated body: {rest!r}"
        responses.append(RawResponse(status_line, headers, rest[:length]))
        data = rest[length:]
    return responses
