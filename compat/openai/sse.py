"""Server-sent events framing for the OpenAI streams (DESIGN.md sections 4 and 8).

Each event is one ``data:`` line of compact JSON and a blank line. JSON escapes every line break inside strings,
so one event is always exactly one ``data:`` line. Keep-alives are SSE comments, which clients skip: they never
look like a chunk. An error after the first chunk is one ``data: {"error": {...}}`` event (the OpenAI SDKs raise
``APIError`` on it); the stream then closes with no finish chunk and no ``[DONE]``. `ChatSSEEncoder` is the
chat stream's framing as the proxy's SSE body takes it (encode, end, error).

Streamed text is most of what a stream sends, one event per token, so `ChatSSEEncoder` frames a plain content
event (no log probabilities) of a choice it has seen before from that choice's last content event: every
byte of such a chunk but the text is the same each time, so only the text is JSON-encoded. The bytes are
exactly those of the chunk dict framed by `sse_event`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.types import Event, Text, Token

from .chat_response import ChunkEncoder
from .errors import error_object

SSE_DONE = b"data: [DONE]\n\n"
SSE_KEEPALIVE = b": keep-alive\n\n"


#: Compact, UTF-8 as is, no NaN; made once (``json.dumps`` with options builds an encoder per call).
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: What follows the text of a content chunk (`ChunkEncoder`'s key order: the text is its last string).
_CONTENT_KEY = b'"content":'


def sse_event(obj: Mapping[str, Any]) -> bytes:
    """``obj`` as one SSE event: ``data: <compact JSON>`` and a blank line, UTF-8."""
    return b"data: " + _JSON.encode(obj).encode("utf-8") + b"\n\n"


def sse_typed_event(obj: Mapping[str, Any]) -> bytes:
    """``obj`` as one SSE event named by its ``type`` (the Responses API's framing): an ``event: <type>`` line,
    then the ``data:`` line. The SDKs dispatch on the JSON ``type``; the ``event:`` line is for other clients."""
    return b"event: " + str(obj["type"]).encode("utf-8") + b"\n" + sse_event(obj)


def sse_error(exc: BaseException, request_id: str | None) -> bytes:
    """The in-band error event for a failure after streaming began (bugs reveal only the request id)."""
    return sse_event({"error": error_object(exc, request_id)})


class ChatSSEEncoder:
    """A chat completion stream's SSE framing: `ChunkEncoder` chunks as ``data:`` events, then ``[DONE]``."""

    def __init__(self, chunks: ChunkEncoder) -> None:
        self._chunks = chunks
        #: choice -> the bytes before and after the text of its plain content chunk (module docstring).
        self._frames: dict[int, tuple[bytes, bytes]] = {}

    def encode(self, event: Event) -> bytes:
        plain = _plain_content(event)
        if plain is None:
            return b"".join(sse_event(chunk) for chunk in self._chunks.encode(event))
        choice, text = plain[0], _JSON.encode(plain[1]).encode("utf-8")
        frame = self._frames.get(choice)
        if frame is not None and not self._chunks.done:
            return frame[0] + text + frame[1]
        framed = [sse_event(chunk) for chunk in self._chunks.encode(event)]
        last = framed[-1]  # the content chunk (after this choice's role chunk, the first time)
        cut = last.rindex(_CONTENT_KEY + text) + len(_CONTENT_KEY)
        self._frames[choice] = (last[:cut], last[cut + len(text) :])
        return b"".join(framed)

    def end(self) -> bytes:
        return SSE_DONE

    def error(self, exc: BaseException, request_id: str) -> bytes:
        return sse_error(exc, request_id)


def _plain_content(event: Event) -> tuple[int, str] | None:
    """The choice and text of a content event without log probabilities (framed from a template), else None."""
    if type(event) is Text:
        return (event.choice, event.text) if event.logprobs is None else None
    return (0, event.text) if type(event) is Token else None
