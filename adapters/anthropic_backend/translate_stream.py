"""Anthropic raw stream events -> engine events. Sans-IO: feed it events, it returns what to send.

Theory of operation. A Messages stream is::

    message_start            (usage.input_tokens, plus cache reads/writes)
    ( content_block_start    (index, block type: text | thinking | tool_use | ...)
      content_block_delta*   (text_delta | thinking_delta | input_json_delta | signature_delta | ...)
      content_block_stop )*
    message_delta            (stop_reason, stop_sequence, cumulative usage.output_tokens)
    message_stop

Text and thinking deltas are forwarded at once as `Text`/`Thinking`. A tool call's input arrives as pieces of
JSON text (``input_json_delta``); they are buffered per block index and one complete `ToolUse` is emitted at
that block's ``content_block_stop``, after checking the joined text is a JSON object. ``message_stop`` emits
the one `Done`, with the mapped stop reason and the usage reported by upstream (prompt tokens include cache
reads and writes, as the API bills them). A thinking block's ``signature_delta`` becomes a `Thinking` piece
carrying the signature (it ends that block), a ``redacted_thinking`` block one `Thinking` carrying its data, so
an Anthropic client can send both back. Blocks the engine has no event for (server tools, citations) are
skipped. ``ping`` never reaches here (the SDK drops it); ``error`` events are
raised by the SDK and translated by `errors.translate_exception`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from anthropic.types import RawMessageStreamEvent

from ..errors import Unavailable
from ..types import Done, Event, StopReason, Text, Thinking, ToolUse, Usage

#: Anthropic stop_reason -> engine StopReason (compat maps these to OpenAI's finish_reason).
STOP_REASONS: dict[str, StopReason] = {
    "end_turn": StopReason.END,
    "max_tokens": StopReason.MAX_TOKENS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "tool_use": StopReason.TOOL_USE,
    "pause_turn": StopReason.END,
    "refusal": StopReason.END,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
}

_HANDLED_EVENTS: frozenset[str] = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    }
)


@dataclass(slots=True)
class _PendingTool:
    id: str
    name: str
    initial_input: object
    json_text: str = ""


class StreamTranslator:
    """Translates one stream. Create one per generation; ``done`` turns true when `Done` was produced."""

    def __init__(self) -> None:
        self._tools: dict[int, _PendingTool] = {}
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._stop_reason = StopReason.END
        self._stop_sequence: str | None = None
        self.done = False

    def feed(self, event: RawMessageStreamEvent) -> list[Event]:
        """The engine events for one upstream event (often one, sometimes none)."""
        if getattr(event, "type", None) not in _HANDLED_EVENTS:
            return []  # an event type newer than this SDK: the SDK builds it unvalidated, as some other class
        if event.type == "message_start":
            usage = event.message.usage
            self._prompt_tokens = _input_tokens(
                usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens
            )
            self._completion_tokens = usage.output_tokens
            return []
        if event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self._tools[event.index] = _PendingTool(block.id, block.name, block.input)
            elif block.type == "text" and block.text:
                return [Text(block.text)]
            elif block.type == "thinking" and block.thinking:
                return [Thinking(block.thinking)]
            elif block.type == "redacted_thinking":
                return [Thinking("", redacted=block.data)]
            return []
        if event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return [Text(delta.text)] if delta.text else []
            if delta.type == "thinking_delta":
                return [Thinking(delta.thinking)] if delta.thinking else []
            if delta.type == "signature_delta":
                return [Thinking("", signature=delta.signature)]
            if delta.type == "input_json_delta" and event.index in self._tools:
                self._tools[event.index].json_text += delta.partial_json
            return []
        if event.type == "content_block_stop":
            pending = self._tools.pop(event.index, None)
            return [] if pending is None else [_complete_tool(pending)]
        if event.type == "message_delta":
            if event.delta.stop_reason is not None:
                self._stop_reason = STOP_REASONS.get(event.delta.stop_reason, StopReason.END)
            self._stop_sequence = event.delta.stop_sequence
            self._completion_tokens = event.usage.output_tokens
            if event.usage.input_tokens is not None:
                self._prompt_tokens = _input_tokens(
                    event.usage.input_tokens,
                    event.usage.cache_creation_input_tokens,
                    event.usage.cache_read_input_tokens,
                )
            return []
        self.done = True  # message_stop
        counts = Usage(self._prompt_tokens, self._completion_tokens)
        return [Done(self._stop_reason, counts, self._stop_sequence)]


def _input_tokens(input_tokens: int, cache_creation: int | None, cache_read: int | None) -> int:
    return input_tokens + (cache_creation or 0) + (cache_read or 0)


def _complete_tool(pending: _PendingTool) -> ToolUse:
    """One complete tool call. Input streamed as JSON pieces (passed on as upstream wrote it) wins; otherwise
    the block's initial input."""
    if pending.json_text.strip():
        try:
            value = json.loads(pending.json_text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise Unavailable(f"upstream sent tool call {pending.name!r} with input that is not a JSON object")
        return ToolUse(pending.id, pending.name, pending.json_text.strip())
    initial = pending.initial_input if isinstance(pending.initial_input, dict) else {}
    return ToolUse(pending.id, pending.name, json.dumps(initial, separators=(",", ":"), ensure_ascii=False))
