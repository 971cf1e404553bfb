"""The Responses API over a persistent WebSocket (``GET /v1/responses``), sans-IO: client events in, server
event frames out.

Theory of operation: the client (the openai SDK's ``client.responses.connect()``) sends one JSON object per
text frame. ``{"type": "response.create", ...}`` carries the same fields as a ``POST /v1/responses`` body
(``stream`` is implied and ignored) and is parsed by the same `parse_responses_request`; the server answers with
the same typed events as the SSE stream, one per frame, from the same `ResponseEncoder`. ``response.steer``
(changing a running response) is not implemented and answered with an ``error`` event, code ``unsupported``.
Anything that cannot be acted on raises `ClientEventError`, carrying the client-visible error; the socket
answers with an ``error`` event and stays open:

    {"type": "error", "status": 400, "error": {"type", "code", "message", "param"}}

which is the shape the SDK's ``ResponseWsError`` reads (and raises on, when nothing else handles it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.errors import TrinferError

from ..errors import RequestTooLarge, RequestValidationError, UnsupportedParameter
from ..json_body import parse_json
from .errors import error_object
from .responses_request import ResponsesRequest, parse_responses_request

CREATE = "response.create"
STEER = "response.steer"
CLIENT_TYPES: tuple[str, ...] = (CREATE, STEER)


class ResponseInProgress(TrinferError):
    """A ``response.create`` while the socket's previous response is still running (one at a time)."""

    status = 409
    error_type = "invalid_request_error"
    default_code = "response_in_progress"


class ClientEventError(Exception):
    """A client event that cannot be acted on; ``error`` is what the client sees in the ``error`` event."""

    def __init__(self, error: TrinferError) -> None:
        super().__init__(error.message)
        self.error = error


def parse_client_event(text: str, *, max_bytes: int) -> ResponsesRequest:
    """The request of one ``response.create`` text frame; `ClientEventError` for anything else.

    ``max_bytes`` is the daemon's ``max_body_bytes``: a larger frame is refused unparsed, like an HTTP body.
    """
    raw = text.encode("utf-8", "surrogatepass")  # lone surrogates then fail UTF-8 decoding as invalid_json
    if len(raw) > max_bytes:
        raise ClientEventError(
            RequestTooLarge(f"event of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
        )
    try:
        event = parse_json(raw)
        if not isinstance(event, dict):
            raise RequestValidationError("An event must be a JSON object.", code="invalid_type")
        kind = event.get("type")
        if kind == STEER:
            raise UnsupportedParameter(
                "response.steer is not supported by this server.", param="type", code="unsupported"
            )
        if kind != CREATE:
            expected = " or ".join(repr(t) for t in CLIENT_TYPES)
            raise RequestValidationError(
                f"Unknown event type {repr(kind)[:80]}; expected {expected}.", param="type", code="invalid_value"
            )
        body = {key: value for key, value in event.items() if key not in ("type", "stream", "stream_id")}
        return parse_responses_request(body)
    except RequestValidationError as exc:
        raise ClientEventError(exc) from exc


def event_frame(event: Mapping[str, Any]) -> str:
    """One server event as a text frame (compact JSON)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def error_event(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The ``error`` event for ``exc`` (a bug reveals nothing but ``request_id``)."""
    status = exc.http_status if isinstance(exc, TrinferError) else 500
    return {"type": "error", "status": status, "error": error_object(exc, request_id)}
