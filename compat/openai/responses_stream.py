"""Engine events as the Responses API's typed stream events and its final ``response`` object.

Theory of operation: one `ResponseEncoder` per response, made with the response's id, creation time, model and
echoed settings. It is a small state machine over the *open output item* (none, a ``message``, a
``reasoning`` item); every event it returns carries the next ``sequence_number`` (from 0), and every item event
its ``output_index`` (and ``content_index`` for message parts) and ``item_id``, which the openai SDK's
``responses.stream()`` helper requires:

    start()                -> response.created, response.in_progress (status in_progress, output [])
    Text / Token           -> (close a reasoning item) and, unless a message is open: output_item.added
                              (message), content_part.added (output_text); then output_text.delta
    Thinking               -> (close a message) and, unless a reasoning item is open: output_item.added
                              (reasoning); then reasoning_text.delta; nothing for a piece without text
    ToolUse                -> (close the open item) output_item.added (function_call, empty arguments),
                              function_call_arguments.delta (the whole arguments), ..._arguments.done,
                              output_item.done
    Done                   -> (an empty message if nothing was output at all) close the open item, then
                              response.completed, or response.incomplete with incomplete_details.reason
                              "max_output_tokens" when the token limit ended it
    fail(exc)              -> response.failed, its ``error`` from the error table, the item that was open kept
                              in its output as ``incomplete``; the stream ends there

Closing a message sends output_text.done, content_part.done and output_item.done; closing a reasoning item sends
reasoning_text.done and output_item.done. The final ``response`` (`response()`) holds every finished item, the
usage and the settings; a non-streaming answer is that object, built from the same events. Events after the
end raise `RuntimeError` (a bug of the caller).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage

from .errors import error_object
from .sse import sse_typed_event

#: Error-table codes -> the ``code`` values OpenAI's ``response.error`` object uses (all else: server_error).
_FAILURE_CODES: dict[str, str] = {
    "upstream_rate_limited": "rate_limit_exceeded",
    "queue_full": "rate_limit_exceeded",
}


def new_response_id() -> str:
    """A fresh response id in OpenAI's form: ``resp_`` and 32 random hex digits."""
    return "resp_" + secrets.token_hex(16)


def _item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def responses_usage(usage: Usage) -> dict[str, Any]:
    """The Responses API's ``usage`` object for engine token counts."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


class ResponseEncoder:
    """Turns one generation's events into Responses stream events (see the module docstring)."""

    def __init__(self, response_id: str, created_at: int, model: str, settings: Mapping[str, Any]) -> None:
        self.response_id = response_id
        self.created_at = created_at
        self.model = model
        self.settings = dict(settings)
        self._sequence = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        self._text: list[str] = []
        self._status = "in_progress"
        self._usage: dict[str, Any] | None = None
        self._incomplete: dict[str, str] | None = None
        self._error: dict[str, Any] | None = None

    # --- the response object --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once `start` has returned the first events."""
        return self._sequence > 0

    @property
    def finished(self) -> bool:
        """True once the response completed, ended incomplete or failed."""
        return self._status != "in_progress"

    def response(self) -> dict[str, Any]:
        """The ``response`` object as it stands: finished items only, usage once finished."""
        return {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": self._status,
            "error": self._error,
            "incomplete_details": self._incomplete,
            "model": self.model,
            "output": [dict(item) for item in self._output],
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            **self.settings,
            "usage": self._usage,
        }

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _lifecycle(self, kind: str) -> dict[str, Any]:
        return self._event(kind, response=self.response())

    def start(self) -> list[dict[str, Any]]:
        """The first two events of every stream."""
        if self._sequence:
            raise RuntimeError("the response has already started")
        return [self._lifecycle("response.created"), self._lifecycle("response.in_progress")]

    # --- engine events ---------------------------------------------------------------------------------

    def encode(self, event: Event) -> list[dict[str, Any]]:
        """The stream events for one engine event, in the order they must be sent."""
        if self.finished:
            raise RuntimeError(f"event after the response ended: {type(event).__name__}")
        if not self._sequence:
            raise RuntimeError("start() must come before the first engine event")
        if isinstance(event, Token | Text):
            return self._text_delta(event.text)
        if isinstance(event, Thinking):  # a piece without text (a signature, redacted reasoning): no place here
            return self._reasoning_delta(event.text) if event.text else []
        if isinstance(event, ToolUse):
            return [*self._close(), *self._function_call(event)]
        return self._finish(event)

    def _open_kind(self) -> str | None:
        return None if self._open is None else str(self._open["type"])

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        events = [] if self._open_kind() == "message" else [*self._close(), *self._open_message()]
        self._text.append(text)
        events.append(self._item_event("response.output_text.delta", content_index=0, delta=text, logprobs=[]))
        return events

    def _reasoning_delta(self, text: str) -> list[dict[str, Any]]:
        events = [] if self._open_kind() == "reasoning" else [*self._close(), *self._open_reasoning()]
        self._text.append(text)
        events.append(self._item_event("response.reasoning_text.delta", content_index=0, delta=text))
        return events

    def _item_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        assert self._open is not None
        return self._event(kind, item_id=self._open["id"], output_index=len(self._output), **fields)

    def _open_message(self) -> list[dict[str, Any]]:
        self._open = {"id": _item_id("msg"), "type": "message", "status": "in_progress", "role": "assistant"}
        self._text = []
        return [
            self._event(
                "response.output_item.added", output_index=len(self._output), item={**self._open, "content": []}
            ),
            self._item_event("response.content_part.added", content_index=0, part=_output_text("")),
        ]

    def _open_reasoning(self) -> list[dict[str, Any]]:
        self._open = {"id": _item_id("rs"), "type": "reasoning", "status": "in_progress"}
        self._text = []
        return [
            self._event(
                "response.output_item.added",
                output_index=len(self._output),
                item={**self._open, "summary": [], "content": []},
            )
        ]

    def _open_item(self, status: str) -> dict[str, Any]:
        """The open item as it stands, finished with ``status``."""
        assert self._open is not None
        text = "".join(self._text)
        if self._open["type"] == "message":
            return {**self._open, "status": status, "content": [_output_text(text)]}
        return {
            **self._open,
            "status": status,
            "summary": [],
            "content": [{"type": "reasoning_text", "text": text}],
        }

    def _close(self, status: str = "completed") -> list[dict[str, Any]]:
        """The events that finish the open item (none if no item is open); the item joins the output."""
        if self._open is None:
            return []
        item = self._open_item(status)
        text = "".join(self._text)
        if item["type"] == "message":
            events = [
                self._item_event("response.output_text.done", content_index=0, text=text, logprobs=[]),
                self._item_event("response.content_part.done", content_index=0, part=item["content"][0]),
            ]
        else:
            events = [self._item_event("response.reasoning_text.done", content_index=0, text=text)]
        events.append(self._event("response.output_item.done", output_index=len(self._output), item=item))
        self._output.append(item)
        self._open = None
        return events

    def _function_call(self, call: ToolUse) -> list[dict[str, Any]]:
        item = {"id": _item_id("fc"), "type": "function_call", "call_id": call.id, "name": call.name}
        index = len(self._output)
        added = self._event(
            "response.output_item.added",
            output_index=index,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        item_id = item["id"]
        delta = self._event(
            "response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=call.arguments
        )
        done = self._event(
            "response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=call.arguments
        )
        finished = {**item, "arguments": call.arguments, "status": "completed"}
        self._output.append(finished)
        return [added, delta, done, self._event("response.output_item.done", output_index=index, item=finished)]

    def _finish(self, done: Done) -> list[dict[str, Any]]:
        truncated = done.stop_reason is StopReason.MAX_TOKENS
        events = [] if self._output or self._open else self._open_message()
        events.extend(self._close("incomplete" if truncated else "completed"))
        self._usage = responses_usage(done.usage)
        if truncated:
            self._status = "incomplete"
            self._incomplete = {"reason": "max_output_tokens"}
            events.append(self._lifecycle("response.incomplete"))
        else:
            self._status = "completed"
            events.append(self._lifecycle("response.completed"))
        return events

    def fail(self, exc: BaseException, request_id: str | None = None) -> list[dict[str, Any]]:
        """The last event of a stream whose generation failed after it started: ``response.failed``."""
        if self.finished:
            raise RuntimeError("the response has already ended")
        wire = error_object(exc, request_id)
        if self._open is not None:  # what was sent stays in the output, marked incomplete
            self._output.append(self._open_item("incomplete"))
            self._open = None
        self._status = "failed"
        self._error = {"code": _FAILURE_CODES.get(str(wire["code"]), "server_error"), "message": wire["message"]}
        return [self._lifecycle("response.failed")]


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseSSE:
    """A `ResponseEncoder` framed as SSE bytes (``event:`` + ``data:`` lines), for the HTTP stream.

    The first engine event is preceded by ``response.created`` and ``response.in_progress``; nothing follows
    the final event (the Responses stream has no ``[DONE]``); a failure after the start is ``response.failed``.
    """

    def __init__(self, encoder: ResponseEncoder) -> None:
        self.encoder = encoder

    def encode(self, event: Event) -> bytes:
        events = [] if self.encoder.started else self.encoder.start()
        events.extend(self.encoder.encode(event))
        return b"".join(sse_typed_event(e) for e in events)

    def end(self) -> bytes:
        return b""

    def error(self, exc: BaseException, request_id: str | None) -> bytes:
        events = [] if self.encoder.started else self.encoder.start()
        events.extend(self.encoder.fail(exc, request_id))
        return b"".join(sse_typed_event(e) for e in events)
