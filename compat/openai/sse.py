"""Server-sent events framing for streamed chat completions (DESIGN.md section 4).

Each event is one ``data:`` line of compact JSON and a blank line. JSON escapes every line break inside strings,
so one event is always exactly one ``data:`` line. Keep-alives are SSE comments, which clients skip: they never
look like a chunk. An error after the first chunk is one ``data: {"error": {...}}`` event (the OpenAI SDKs raise
``APIError`` on it); the stream then closes with no finish chunk and no ``[DONE]``. `ChatSSEEncoder` is the
chat stream's framing as the proxy's SSE body takes it (encode, end, error).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.types import Event

from ..errors import error_object
from .chat_response import ChunkEncoder

SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"


def sse_event(obj: Mapping[str, Any]) -> bytes:
    """``obj`` as one SSE event: ``data: <compact JSON>`` and a blank line, UTF-8."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b"data: " + text.encode("utf-8") + b"\n\n"


def sse_error(exc: BaseException, request_id: str | None) -> bytes:
    """The in-band error event for a failure after streaming began (bugs reveal only the request id)."""
    return sse_event({"error": error_object(exc, request_id)})


class ChatSSEEncoder:
    """A chat completion stream's SSE framing: `ChunkEncoder` chunks as ``data:`` events, then ``[DONE]``."""

    def __init__(self, chunks: ChunkEncoder) -> None:
        self._chunks = chunks

    def encode(self, event: Event) -> bytes:
        return b"".join(sse_event(chunk) for chunk in self._chunks.encode(event))

    def end(self) -> bytes:
        return SSE_DONE

    def error(self, exc: BaseException, request_id: str) -> bytes:
        return sse_error(exc, request_id)
