"""Engine events as Anthropic's Messages stream: typed SSE events, each with its ``event:`` line.

Theory of operation. One `EventEncoder` per stream turns each engine event into zero or more
``(event type, data)`` pairs, in the order the anthropic SDK requires::

    first event  -> message_start (the message with empty content, usage with output_tokens 0), ping
    Text/Token   -> content_block_start {"type": "text"} when no text block is open, content_block_delta
                    text_delta
    Thinking     -> the same with a thinking block and thinking_delta; a piece with a ``signature`` then sends
                    signature_delta and closes the block (the next piece opens a new one); a redacted piece
                    is a whole redacted_thinking block (start with its data, stop)
    ToolUse      -> content_block_start {"type": "tool_use", input {}}, one content_block_delta
                    input_json_delta with the whole arguments text, content_block_stop
    Done         -> content_block_stop of the open block, message_delta (stop_reason, stop_sequence, usage
                    with the cumulative output_tokens and the input_tokens), message_stop

A block is opened before its first delta and closed before the next block opens, so indexes count up from 0
without gaps. The input token count is known only when the generation ends, so ``message_start`` carries 0 and
``message_delta`` the real count (the SDK's accumulator takes it from there). `sse_event` frames a pair as
``event: <type>`` plus one ``data:`` line; a failure after the first event is one ``event: error`` carrying
Anthropic's error body (the SDK raises on it), and the stream ends there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.types import Done, Event, Text, Thinking, Token, ToolUse

from .errors import error_body
from .response import STOP_REASONS, stop_sequence

WireEvent = tuple[str, dict[str, Any]]

_EMPTY_BLOCKS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": ""},
    "thinking": {"type": "thinking", "thinking": "", "signature": ""},
}
_DELTAS: dict[str, str] = {"text": "text_delta", "thinking": "thinking_delta"}


def sse_event(event_type: str, data: Mapping[str, Any]) -> bytes:
    """One SSE event: ``event: <type>``, ``data: <compact JSON>`` and a blank line, UTF-8."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return b"event: " + event_type.encode("ascii") + b"\ndata: " + text.encode("utf-8") + b"\n\n"


def sse_error(exc: BaseException, request_id: str | None) -> bytes:
    """The in-band ``event: error`` for a failure after streaming began (bugs reveal only the request id)."""
    return sse_event("error", error_body(exc, request_id))


class EventEncoder:
    """Encodes one stream; see the module docstring. Events after `Done` raise `RuntimeError`."""

    def __init__(self, model: str, message_id: str, stops: tuple[str, ...] = ()) -> None:
        self._model = model
        self._id = message_id
        self._stops = stops
        self._started = False
        self._finished = False
        self._index = -1
        self._open: str | None = None

    def encode(self, event: Event) -> list[WireEvent]:
        if self._finished:
            raise RuntimeError("event after Done")
        out: list[WireEvent] = []
        if not self._started:
            self._started = True
            out += [("message_start", self._message_start()), ("ping", {"type": "ping"})]
        if isinstance(event, Text | Token):
            out += self._delta("text", event.text)
        elif isinstance(event, Thinking):
            out += self._thinking(event)
        elif isinstance(event, ToolUse):
            start = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            out += self._start(start)
            out.append(self._delta_event({"type": "input_json_delta", "partial_json": event.arguments}))
            out += self._stop()
        else:
            out += self._close()
            out += self._finish(event)
        return out

    def _message_start(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return {"type": "message_start", "message": message}

    def _thinking(self, event: Thinking) -> list[WireEvent]:
        if event.redacted is not None:
            block = {"type": "redacted_thinking", "data": event.redacted}
            return [*self._start(block), *self._stop()]
        out = self._delta("thinking", event.text)
        if event.signature is None:
            return out
        if self._open != "thinking":
            out += self._start(dict(_EMPTY_BLOCKS["thinking"]), "thinking")
        out.append(self._delta_event({"type": "signature_delta", "signature": event.signature}))
        return out + self._close()

    def _delta(self, kind: str, text: str) -> list[WireEvent]:
        if not text:
            return []
        out: list[WireEvent] = []
        if self._open != kind:
            out += self._start(dict(_EMPTY_BLOCKS[kind]), kind)
        out.append(self._delta_event({"type": _DELTAS[kind], kind: text}))
        return out

    def _start(self, block: dict[str, Any], kind: str | None = None) -> list[WireEvent]:
        """Close the open block and start ``block`` at the next index; ``kind`` keeps it open for deltas."""
        out = self._close()
        self._index += 1
        self._open = kind
        return [
            *out,
            ("content_block_start", {"type": "content_block_start", "index": self._index, "content_block": block}),
        ]

    def _delta_event(self, delta: dict[str, Any]) -> WireEvent:
        return ("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _stop(self) -> list[WireEvent]:
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _close(self) -> list[WireEvent]:
        if self._open is None:
            return []
        self._open = None
        return self._stop()

    def _finish(self, done: Done) -> list[WireEvent]:
        self._finished = True
        delta = {"stop_reason": STOP_REASONS[done.stop_reason], "stop_sequence": stop_sequence(done, self._stops)}
        usage = {"input_tokens": done.usage.prompt_tokens, "output_tokens": done.usage.completion_tokens}
        return [
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]


class MessagesSSEEncoder:
    """A Messages stream's SSE framing as one value: each event's bytes, nothing after ``message_stop``, and
    the one ``event: error`` for a failure after streaming began (the shape the proxy's SSE body takes)."""

    def __init__(self, events: EventEncoder) -> None:
        self._events = events

    def encode(self, event: Event) -> bytes:
        return b"".join(sse_event(name, data) for name, data in self._events.encode(event))

    def end(self) -> bytes:
        return b""

    def error(self, exc: BaseException, request_id: str) -> bytes:
        return sse_error(exc, request_id)
