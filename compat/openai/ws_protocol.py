"""The WebSocket protocol of DESIGN.md section 6, sans-IO: client text frames in, typed values out; engine events
in, server text frames out.

Theory of operation: every frame is one JSON object in one text frame. A client frame is parsed whole by
`parse_client_frame` into a `CreateFrame` or a `CancelFrame`; anything else raises `FrameError`, which carries
the client-visible error and the request id when one could be read (else ``None``), so the connection answers
with an ``error`` frame and carries on. The chat body inside ``create`` goes through the same
`parse_chat_request` as ``POST /v1/chat/completions``, and a request's events become frames through the same
`ChunkEncoder` as SSE (`FrameEncoder` only wraps each chunk), so the two transports cannot drift apart.

Every request ends with exactly one terminal frame: ``chat.completion.done`` or ``error``. Binary frames,
sockets and timeouts are the proxy's business, not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.errors import TrinferError
from adapters.types import Done, Event

from ..errors import RequestTooLarge, RequestValidationError
from ..json_body import parse_json
from .chat_request import ChatRequest, parse_chat_request
from .chat_response import ChunkEncoder
from .errors import error_object

CREATE = "chat.completion.create"
CANCEL = "chat.completion.cancel"
CHUNK = "chat.completion.chunk"
DONE = "chat.completion.done"
ERROR = "error"

CLIENT_TYPES: tuple[str, ...] = (CREATE, CANCEL)


@dataclass(frozen=True, slots=True)
class CreateFrame:
    """``chat.completion.create``: start streaming ``chat`` under the client's ``id``."""

    id: str
    chat: ChatRequest


@dataclass(frozen=True, slots=True)
class CancelFrame:
    """``chat.completion.cancel``: stop the in-flight request ``id`` (no-op if it already ended)."""

    id: str


ClientFrame = CreateFrame | CancelFrame


class FrameError(Exception):
    """A client frame that cannot be acted on.

    ``error`` is what the client sees in the ``error`` frame (its message names the problem); ``frame_id`` is
    the request id the frame carried, or ``None`` when it could not be read.
    """

    def __init__(self, error: TrinferError, frame_id: str | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.frame_id = frame_id


def _invalid(message: str, *, param: str | None, code: str) -> RequestValidationError:
    return RequestValidationError(message, param=param, code=code)


def _frame_id(frame: Mapping[str, Any]) -> str | None:
    value = frame.get("id")
    return value if isinstance(value, str) and value else None


def parse_client_frame(text: str, *, max_bytes: int, interruptible: bool = False) -> ClientFrame:
    """Parse one client text frame. Raises `FrameError` (and nothing else) for any frame it cannot act on.

    ``max_bytes`` is the daemon's ``max_body_bytes``: a frame larger than that (in UTF-8) is refused without
    being parsed, like an oversized HTTP body. ``interruptible``: as for `compat.json_body.parse_json`.
    """
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates then fail UTF-8 decoding as invalid_json
    if len(raw) > max_bytes:
        raise FrameError(
            RequestTooLarge(f"frame of {len(raw)} bytes exceeds the limit of {max_bytes} bytes"), None
        )
    try:
        frame = parse_json(raw, interruptible=interruptible)
    except RequestValidationError as exc:
        raise FrameError(exc, None) from exc
    if not isinstance(frame, dict):
        raise FrameError(_invalid("a frame must be a JSON object", param=None, code="invalid_frame"), None)
    frame_id = _frame_id(frame)
    if "type" not in frame:
        raise FrameError(_invalid("frame is missing 'type'", param="type", code="missing_field"), frame_id)
    kind = frame["type"]
    if kind not in CLIENT_TYPES:
        expected = " or ".join(repr(t) for t in CLIENT_TYPES)
        shown = repr(kind)[:80]
        raise FrameError(
            _invalid(f"unknown frame type {shown}; expected {expected}", param="type", code="unknown_frame_type"),
            frame_id,
        )
    if "id" not in frame:
        raise FrameError(_invalid(f"{kind} frame is missing 'id'", param="id", code="missing_field"), None)
    if frame_id is None:
        raise FrameError(_invalid("'id' must be a non-empty string", param="id", code="invalid_value"), None)
    if kind == CANCEL:
        return CancelFrame(frame_id)
    if "request" not in frame:
        raise FrameError(
            _invalid(f"{kind} frame is missing 'request'", param="request", code="missing_field"), frame_id
        )
    body = frame["request"]
    if isinstance(body, dict):
        body = {**body, "stream": True}  # a WebSocket request always streams; the client's value is ignored
    try:
        chat = parse_chat_request(body)
    except RequestValidationError as exc:
        raise FrameError(exc, frame_id) from exc
    return CreateFrame(frame_id, chat)


def _dump(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def chunk_frame(frame_id: str, chunk: Mapping[str, Any]) -> str:
    """``chat.completion.chunk``: one chunk object, exactly as SSE would carry it."""
    return _dump({"type": CHUNK, "id": frame_id, "chunk": chunk})


def done_frame(frame_id: str, finish_reason: str, usage: Mapping[str, Any]) -> str:
    """``chat.completion.done``: the request finished; always carries usage, whatever ``include_usage`` says."""
    return _dump({"type": DONE, "id": frame_id, "usage": usage, "finish_reason": finish_reason})


def error_frame(frame_id: str | None, exc: BaseException, request_id: str | None = None) -> str:
    """``error``: the OpenAI error object for ``exc`` (a bug reveals nothing but ``request_id``)."""
    return _dump({"type": ERROR, "id": frame_id, "error": error_object(exc, request_id)})


class FrameEncoder:
    """One request's engine events as server frames, through the same `ChunkEncoder` as SSE.

    Each chunk the encoder produces becomes a ``chat.completion.chunk`` frame; `Done` additionally produces the
    ``chat.completion.done`` frame with the encoder's finish_reason and usage.
    """

    def __init__(self, frame_id: str, chunks: ChunkEncoder) -> None:
        self.frame_id = frame_id
        self._chunks = chunks

    def encode(self, event: Event) -> list[str]:
        frames = [chunk_frame(self.frame_id, chunk) for chunk in self._chunks.encode(event)]
        if isinstance(event, Done):
            frames.append(done_frame(self.frame_id, self._chunks.finish_reason, self._chunks.usage_dict))
        return frames


__all__ = [
    "CANCEL",
    "CHUNK",
    "CLIENT_TYPES",
    "CREATE",
    "DONE",
    "ERROR",
    "CancelFrame",
    "ClientFrame",
    "CreateFrame",
    "FrameEncoder",
    "FrameError",
    "chunk_frame",
    "done_frame",
    "error_frame",
    "parse_client_frame",
]
