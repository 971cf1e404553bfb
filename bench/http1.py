"""A minimal blocking HTTP/1.1 client on raw sockets, with arrival times for every piece of a streamed body.

Why not httpx: the streaming benchmarks count tens of thousands of SSE events a second and time the first
token to the millisecond; a client that parses as little as possible (and the same one for every target)
keeps the load generator out of the measurement. Keep-alive is supported for Content-Length and chunked
bodies; SSE events are split on the blank line that ends them.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

RECV = 262_144
#: SSE events end with a blank line; servers use LF (hypercorn, llama-server) or CRLF (sse-starlette).
EVENT_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class StreamResult:
    """One streamed chat completion as the client saw it; times are ``time.perf_counter()`` seconds."""

    status: int
    sent_at: float
    #: Arrival time of each SSE event that carried content text (the chunks that are "tokens").
    token_times: list[float] = field(default_factory=list)
    events: int = 0
    done: bool = False
    text: str = ""
    usage: dict[str, Any] | None = None
    error: Any = None

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.sent_at

    def decode_rate(self) -> float:
        """Tokens per second between the first and the last content chunk."""
        if len(self.token_times) < 2:
            return 0.0
        return (len(self.token_times) - 1) / (self.token_times[-1] - self.token_times[0])


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, *, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_request(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] = {}) -> float:
        """Send one request (``body`` is JSON-encoded unless bytes); returns the send time."""
        payload = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        sent_at = time.perf_counter()
        self.sock.sendall(data)
        return sent_at

    def _fill(self) -> bool:
        data = self.sock.recv(RECV)
        self._buffer += data
        return bool(data)

    def read_head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                raise ConnectionError("connection closed before the response head")
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def body_pieces(self, headers: Mapping[str, str]) -> Iterator[tuple[bytes, float]]:
        """The body, as (bytes, arrival time) pieces, dechunked."""
        if "content-length" in headers:
            remaining = int(headers["content-length"])
            while remaining:
                if not self._buffer and not self._fill():
                    raise ConnectionError("connection closed inside the body")
                piece, self._buffer = self._buffer[:remaining], self._buffer[remaining:]
                remaining -= len(piece)
                yield piece, time.perf_counter()
            return
        if headers.get("transfer-encoding", "").lower() != "chunked":
            while True:  # read to close
                if self._buffer:
                    piece, self._buffer = self._buffer, b""
                    yield piece, time.perf_counter()
                if not self._fill():
                    return
        while True:
            while b"\r\n" not in self._buffer:
                if not self._fill():
                    raise ConnectionError("connection closed inside a chunk header")
            size_line, _, self._buffer = self._buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in self._buffer:
                    if not self._fill():
                        return
                self._buffer = self._buffer.partition(b"\r\n")[2]
                return
            while len(self._buffer) < size + 2:
                if not self._fill():
                    raise ConnectionError("connection closed inside a chunk")
            piece, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
            yield piece, time.perf_counter()

    def request(self, method: str, path: str, body: Any = None, headers: Mapping[str, str] = {}) -> Response:
        self.send_request(method, path, body, headers)
        status, head = self.read_head()
        return Response(status, head, b"".join(piece for piece, _ in self.body_pieces(head)))

    def stream_chat(
        self, path: str, body: Mapping[str, Any], *, parse: bool = True, stop_after: int = 0
    ) -> StreamResult:
        """POST a streaming chat request and read its SSE events.

        ``parse=False`` only counts events (for throughput); ``stop_after=n`` returns after n content events
        without reading further (the caller then closes the connection to disconnect).
        """
        result, head = self._open_stream(path, body)
        if result.status != 200:
            return result
        parts: list[str] = []
        for event, arrived in self._sse_events(head):
            if not event.startswith(b"data: "):
                continue  # comments (keep-alive) and other fields
            data = event[6:]
            result.events += 1
            if data == b"[DONE]":
                result.done = True
                continue
            if not parse:
                if b'"content":"' in data and b'"content":""' not in data:
                    result.token_times.append(arrived)
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                result.error = chunk["error"]
                continue
            if chunk.get("usage"):
                result.usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                text = (choice.get("delta") or {}).get("content")
                if text:
                    parts.append(text)
                    result.token_times.append(arrived)
            if stop_after and len(result.token_times) >= stop_after:
                result.text = "".join(parts)
                return result
        result.text = "".join(parts)
        return result

    def stream_typed(self, path: str, body: Mapping[str, Any], *, delta: str, final: str) -> StreamResult:
        """POST a streaming request of a typed-event dialect (Responses) and count its events without parsing
        them: an event whose ``type`` is ``delta`` is a token, one whose ``type`` is ``final`` ends the stream
        (``done``)."""
        delta_mark = f'"type":"{delta}"'.encode()
        final_mark = f'"type":"{final}"'.encode()
        result, head = self._open_stream(path, body)
        if result.status != 200:
            return result
        for event, arrived in self._sse_events(head):
            result.events += 1
            if delta_mark in event:
                result.token_times.append(arrived)
            elif final_mark in event:
                result.done = True
        return result

    def _open_stream(self, path: str, body: Mapping[str, Any]) -> tuple[StreamResult, dict[str, str]]:
        """POST a streaming request and read the response head; a non-200 answer's body is the result's error."""
        sent_at = self.send_request("POST", path, dict(body))
        status, head = self.read_head()
        result = StreamResult(status, sent_at)
        if status != 200:
            result.error = b"".join(piece for piece, _ in self.body_pieces(head)).decode("utf-8", "replace")
        return result, head

    def _sse_events(self, head: Mapping[str, str]) -> Iterator[tuple[bytes, float]]:
        """The body's SSE events (without their blank line), each with the arrival time of its last piece."""
        pending = b""
        for piece, arrived in self.body_pieces(head):
            pending += piece
            *events, pending = EVENT_END.split(pending)
            for event in events:
                yield event, arrived


def get_json(host: str, port: int, path: str) -> tuple[int, Any]:
    """One GET on a fresh connection: (status, decoded JSON or None)."""
    with Connection(host, port, timeout=10) as conn:
        response = conn.request("GET", path, headers={"Connection": "close"})
    try:
        return response.status, json.loads(response.body)
    except ValueError:
        return response.status, None
