"""An upstream's answer as engine events: a ``text/event-stream`` of ``chat.completion.chunk`` objects, or
one ``chat.completion`` object. Sans-IO.

Two small machines, fed by the backend as bytes arrive:

`SseDecoder` splits the byte stream into events (``data:`` lines joined, ``event:`` names kept, comments and
keep-alives skipped; LF or CRLF line ends; input may be cut anywhere, even inside a UTF-8 sequence).

`ChunkTranslator` turns each decoded chunk into engine events:

    delta.content                         -> Text (empty strings dropped)
    delta.reasoning_content / .reasoning  -> Thinking (the names vLLM, llama.cpp and DeepSeek use)
    delta.tool_calls[i] pieces            -> one ToolUse per call, when it is complete: when a call with a
                                             higher index starts, when a finish_reason arrives, or at the end;
                                             its arguments (the joined pieces, "" meaning {}) must be the JSON
                                             text of an object, as the engine's `ToolUse` promises
    usage (any chunk that carries it)     -> kept for Done; a server that ignores ``include_usage``
                                             (llama-cpp-python's) gets completion_tokens = the number of
                                             chunks that carried content (one token each on llama.cpp and
                                             vLLM) and prompt_tokens = 0: unknown, not invented
    finish_reason                         -> Done's stop reason: stop -> END, length -> MAX_TOKENS,
                                             tool_calls / function_call -> TOOL_USE (also when a server says
                                             "stop" after calling tools), anything else -> END. OpenAI's
                                             "stop" covers both the end of the answer and a stop sequence;
                                             only a server that says which (vLLM's ``stop_reason``: the
                                             matched string) gives STOP_SEQUENCE
    {"error": {...}}                      -> `Unavailable` carrying the upstream's message
    [DONE]                                -> the end: Done

A non-streaming answer (`completion_events`: the body of one ``chat.completion``) goes through the same
translator: its first choice's ``message`` is fed as if it were one delta holding the whole answer (tool
calls keyed by their position in ``tool_calls``, each with its full arguments), then its ``finish_reason``,
then the end. Its ``usage`` is the object's own; an answer without one gets 0 and 0 (unknown: counting
chunks means nothing when there was one).

Anything that is not the shape above (a chunk or body that is not a JSON object, an answer with no choice, a
tool call without a name) is the upstream's protocol error: `Unavailable`, never a crash.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..errors import Unavailable
from ..types import Done, Event, StopReason, Text, Thinking, ToolUse, Usage

DONE_SENTINEL = "[DONE]"

_STOP_REASONS: dict[str, StopReason] = {
    "stop": StopReason.END,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_USE,
    "function_call": StopReason.TOOL_USE,
}


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: its ``event:`` name ("message" when none was given) and its data."""

    data: str
    event: str = "message"


class SseDecoder:
    """Incremental SSE framing (the subset servers use for chat streams; ``id:``/``retry:`` are ignored)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = "message"

    def feed(self, data: bytes) -> list[SseEvent]:
        """The events completed by ``data`` (an event is complete at its blank line)."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        events: list[SseEvent] = []
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if self._data:
                    events.append(SseEvent("\n".join(self._data), self._event))
                self._data = []
                self._event = "message"
                continue
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events


@dataclass
class _PendingCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _protocol_error(what: str) -> Unavailable:
    return Unavailable(f"the upstream server sent a malformed answer: {what}")


def _upstream_message(error: Any) -> str:
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return "no message"


class ChunkTranslator:
    """One upstream stream's chunks -> engine events (see the module docstring)."""

    def __init__(self) -> None:
        self._pending: dict[int, _PendingCall] = {}
        self._calls_sent = 0
        self._finish: str | None = None
        self._stop_string = False
        self._usage: Usage | None = None
        self._content_chunks = 0

    @property
    def finished(self) -> bool:
        """True once a ``finish_reason`` was seen: the answer is complete even if the stream breaks now."""
        return self._finish is not None

    def feed_data(self, data: str) -> list[Event]:
        """The events of one SSE ``data`` payload (not the ``[DONE]`` sentinel)."""
        return self.feed(_json_object(data, "an event"))

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events of one decoded chunk."""
        if "error" in chunk:
            raise Unavailable(f"the upstream server failed mid-stream: {_upstream_message(chunk['error'])}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = _usage(usage)
        events: list[Event] = []
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise _protocol_error("'choices' is not an array")
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # trinfer asks for one choice; others (never expected) are not ours to mix in
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise _protocol_error("a 'delta' that is not an object")
            before = len(events)
            events.extend(self._delta(delta))
            if len(events) > before or delta.get("tool_calls"):
                self._content_chunks += 1
            if self._finish_reason(choice):
                events.extend(self._flush(None))
        return events

    def feed_completion(self, completion: dict[str, Any]) -> list[Event]:
        """Every event of one decoded ``chat.completion`` object (a non-streaming answer), through `Done`."""
        if completion.get("error") is not None:
            raise Unavailable(f"the upstream server failed: {_upstream_message(completion['error'])}")
        choices = completion.get("choices")
        if not isinstance(choices, list):
            raise _protocol_error("'choices' is not an array")
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            raise _protocol_error("an answer with no choice")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise _protocol_error("a choice whose 'message' is not an object")
        usage = completion.get("usage")
        self._usage = _usage(usage) if isinstance(usage, dict) else Usage()
        events = self._delta(message, whole=True)
        self._finish_reason(choice)
        return events + self.finish()

    def finish(self) -> list[Event]:
        """The last events once the stream ended with ``[DONE]``: calls still open, then `Done`."""
        events = self._flush(None)
        stop = _STOP_REASONS.get(self._finish or "stop", StopReason.END)
        if stop is StopReason.END and self._calls_sent:
            stop = StopReason.TOOL_USE
        elif stop is StopReason.END and self._stop_string:
            stop = StopReason.STOP_SEQUENCE
        usage = self._usage if self._usage is not None else Usage(completion_tokens=self._content_chunks)
        events.append(Done(stop, usage))
        return events

    def _finish_reason(self, choice: dict[str, Any]) -> bool:
        """Keep the choice's ``finish_reason``, if it has one (then True)."""
        reason = choice.get("finish_reason")
        if reason is None:
            return False
        self._finish = str(reason)
        self._stop_string = isinstance(choice.get("stop_reason"), str)
        return True

    def _delta(self, delta: dict[str, Any], *, whole: bool = False) -> list[Event]:
        """The events of one delta, or of a whole message (``whole``: every tool call is complete, and is
        keyed by its position whatever ``index`` it carries)."""
        events: list[Event] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(Thinking(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(Text(content))
        calls = delta.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise _protocol_error("'tool_calls' is not an array")
            for position, call in enumerate(calls):
                piece = {**call, "index": position} if whole and isinstance(call, dict) else call
                events.extend(self._tool_call_piece(piece, position))
        return events

    def _tool_call_piece(self, call: Any, position: int) -> list[Event]:
        if not isinstance(call, dict):
            raise _protocol_error("a tool call that is not an object")
        index = call.get("index", position)
        if not isinstance(index, int):
            raise _protocol_error("a tool call index that is not an integer")
        events = self._flush(index) if index not in self._pending else []
        pending = self._pending.setdefault(index, _PendingCall())
        if isinstance(call.get("id"), str) and call["id"]:
            pending.id = call["id"]
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise _protocol_error("a tool call 'function' that is not an object")
        if isinstance(function.get("name"), str) and not pending.name:
            pending.name = function["name"]  # sent once by most servers, on every piece by a few
        if isinstance(function.get("arguments"), str):
            pending.arguments.append(function["arguments"])
        return events

    def _flush(self, below: int | None) -> list[Event]:
        """Complete the open calls (those with an index below ``below``, or all), in index order."""
        done = sorted(i for i in self._pending if below is None or i < below)
        events: list[Event] = []
        for index in done:
            call = self._pending.pop(index)
            events.append(_tool_use(call))
            self._calls_sent += 1
        return events


def _tool_use(call: _PendingCall) -> ToolUse:
    if not call.name:
        raise _protocol_error("a tool call without a function name")
    arguments = "".join(call.arguments) or "{}"
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise Unavailable(f"the upstream model called {call.name!r} with arguments that are not a JSON object")
    return ToolUse(id=call.id or f"call_{secrets.token_hex(12)}", name=call.name, arguments=arguments)


def completion_events(body: bytes) -> list[Event]:
    """Every event of a non-streaming answer's body (one ``chat.completion`` object), through `Done`."""
    return ChunkTranslator().feed_completion(_json_object(body, "a body"))


def _json_object(data: str | bytes, what: str) -> dict[str, Any]:
    """``data`` decoded, when it is a JSON object; else the protocol error naming ``what`` it was."""
    try:
        value = json.loads(data)
    except ValueError:
        raise _protocol_error(f"{what} that is not JSON") from None
    if not isinstance(value, dict):
        raise _protocol_error(f"{what} that is not a JSON object")
    return value


def _usage(usage: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")), completion_tokens=_count(usage.get("completion_tokens"))
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
