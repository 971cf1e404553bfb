"""Engine events folded into one Anthropic ``message`` object (a non-streaming answer), and the small shared
pieces of the answer: ids, stop reasons, usage, the ``count_tokens`` answer.

A message's ``content`` lists the blocks in the order the events came: consecutive text pieces make one
``text`` block, consecutive reasoning pieces one ``thinking`` block, each tool call one ``tool_use`` block whose
``input`` is the call's arguments object. A reasoning piece with a ``signature`` (Anthropic's backend signs
its reasoning) sets the open thinking block's signature and ends it; without one the signature stays empty
(local models do not sign). A redacted piece is one ``redacted_thinking`` block holding its data.
``stop_sequence`` names the sequence that ended the text: the one the backend reported, or the only one the
request gave.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage

STOP_REASONS: dict[StopReason, str] = {
    StopReason.END: "end_turn",
    StopReason.MAX_TOKENS: "max_tokens",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.TOOL_USE: "tool_use",
}


def new_message_id() -> str:
    """A fresh message id in Anthropic's form: ``msg_`` and 24 random hex digits."""
    return "msg_" + secrets.token_hex(12)


def usage_object(usage: Usage) -> dict[str, int]:
    """Anthropic's ``usage``: input and output token counts."""
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def stop_sequence(done: Done, stops: tuple[str, ...]) -> str | None:
    """The stop sequence that ended the answer (null unless the stop reason is ``stop_sequence``)."""
    if done.stop_reason is not StopReason.STOP_SEQUENCE:
        return None
    if done.stop_sequence is not None:
        return done.stop_sequence
    return stops[0] if len(stops) == 1 else None


def count_tokens_answer(input_tokens: int) -> dict[str, int]:
    """The body of a ``count_tokens`` answer."""
    return {"input_tokens": input_tokens}


def tool_input(event: ToolUse) -> Any:
    """A tool call's arguments as the JSON object Anthropic's ``input`` carries."""
    return json.loads(event.arguments)


class MessageAccumulator:
    """Folds one generation's events into Anthropic's ``message`` object; `result` once `Done` was added."""

    def __init__(self, model: str, message_id: str, stops: tuple[str, ...] = ()) -> None:
        self._model = model
        self._id = message_id
        self._stops = stops
        self._content: list[dict[str, Any]] = []
        self._done: Done | None = None
        #: The last block is a thinking block that further reasoning text extends (no signature yet).
        self._thinking_open = False

    def add(self, event: Event) -> None:
        if self._done is not None:
            raise RuntimeError("event after Done")
        if isinstance(event, Text | Token):
            self._text(event.text)
        elif isinstance(event, Thinking):
            self._thinking(event)
        elif isinstance(event, ToolUse):
            self._thinking_open = False
            self._content.append(
                {"type": "tool_use", "id": event.id, "name": event.name, "input": tool_input(event)}
            )
        else:
            self._done = event

    def _text(self, text: str) -> None:
        if not text:
            return
        self._thinking_open = False
        if self._content and self._content[-1]["type"] == "text":
            self._content[-1]["text"] += text
        else:
            self._content.append({"type": "text", "text": text})

    def _thinking(self, event: Thinking) -> None:
        if event.redacted is not None:
            self._thinking_open = False
            self._content.append({"type": "redacted_thinking", "data": event.redacted})
            return
        if not event.text and event.signature is None:
            return
        if not self._thinking_open:
            self._thinking_open = True
            self._content.append({"type": "thinking", "thinking": "", "signature": ""})
        block = self._content[-1]
        block["thinking"] += event.text
        if event.signature is not None:
            block["signature"] = event.signature
            self._thinking_open = False

    def result(self) -> dict[str, Any]:
        """The ``message`` object. Raises `RuntimeError` before `Done`."""
        if self._done is None:
            raise RuntimeError("the stream has not finished: no Done event yet")
        return {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": self._content,
            "stop_reason": STOP_REASONS[self._done.stop_reason],
            "stop_sequence": stop_sequence(self._done, self._stops),
            "usage": usage_object(self._done.usage),
        }
