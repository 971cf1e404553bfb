"""Engine events as OpenAI ``chat.completion.chunk`` dicts (streaming) or one ``chat.completion`` dict.

Theory of operation (streaming): a `ChunkEncoder` is made once per stream with the stream's single ``id`` and
``created``, and turns each event into zero or more chunk dicts, in order:

    first event           -> first a role chunk, delta ``{"role": "assistant", "content": "", "refusal": null}``
                             (content null when the event is a tool call), as OpenAI sends it - some clients
                             wait for it - then the event's own chunks
    Token / Text          -> delta ``{"content": text}``
    Thinking              -> delta ``{"reasoning_content": text}`` (the field DeepSeek, vLLM and llama.cpp use)
    ToolUse               -> delta ``{"tool_calls": [{index, id, type, function: {name, arguments}}]}``, one
                             whole call per chunk, ``index`` counting calls from 0
    Done                  -> the finish chunk with an empty delta and ``finish_reason``, then, only with
                             ``include_usage``, a usage chunk whose ``choices`` is ``[]``

Usage objects carry OpenAI's ``prompt_tokens_details.cached_tokens`` and
``completion_tokens_details.reasoning_tokens`` (0 where the backend has none), streaming or not.

Content chunks never carry a ``usage`` key. ``logprobs`` is always null (log probabilities are refused at request
time) and ``system_fingerprint`` is null, as OpenAI sends when it has none. Events after ``Done`` are a bug of
the caller and raise `RuntimeError`. `CompletionAccumulator` folds the same events into the non-streaming form.
"""

from __future__ import annotations

import secrets
from typing import Any

from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage

_FINISH_REASONS: dict[StopReason, str] = {
    StopReason.END: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.TOOL_USE: "tool_calls",
}


def finish_reason(stop: StopReason) -> str:
    """OpenAI's ``finish_reason`` for an engine stop reason."""
    return _FINISH_REASONS[stop]


def new_completion_id() -> str:
    """A fresh completion id in OpenAI's form: ``chatcmpl-`` and 24 random hex digits."""
    return "chatcmpl-" + secrets.token_hex(12)


def role_delta(*, tools: bool) -> dict[str, Any]:
    """The delta of a stream's first chunk, as OpenAI sends it: empty content, or null when a tool call follows."""
    return {"role": "assistant", "content": None if tools else "", "refusal": None}


def usage_object(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object for engine token counts, with its two details objects."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call(index: int, event: ToolUse) -> dict[str, Any]:
    return {
        "index": index,
        "id": event.id,
        "type": "function",
        "function": {"name": event.name, "arguments": event.arguments},
    }


class _Finished:
    """The outcome of a stream, readable once its `Done` was seen."""

    _done: Done | None

    def _require_done(self) -> Done:
        if self._done is None:
            raise RuntimeError("the stream has not finished: no Done event yet")
        return self._done

    @property
    def done(self) -> bool:
        """True once the `Done` event was seen."""
        return self._done is not None

    @property
    def finish_reason(self) -> str:
        """OpenAI's ``finish_reason`` of the finished stream."""
        return finish_reason(self._require_done().stop_reason)

    @property
    def usage_dict(self) -> dict[str, Any]:
        """OpenAI's ``usage`` object of the finished stream."""
        return usage_object(self._require_done().usage)

    def _accept(self, event: Event) -> None:
        if self._done is not None:
            raise RuntimeError(f"event after Done: {type(event).__name__}")
        if isinstance(event, Done):
            self._done = event


class ChunkEncoder(_Finished):
    """Turns one stream's events into ``chat.completion.chunk`` dicts (see the module docstring)."""

    def __init__(self, model: str, completion_id: str, created: int, include_usage: bool) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage
        self._done = None
        self._role_sent = False
        self._tool_calls = 0

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def _delta_chunk(self, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}])

    def encode(self, event: Event) -> list[dict[str, Any]]:
        """The chunks for one event, in the order they must be sent."""
        self._accept(event)
        chunks = [] if self._role_sent else [self._delta_chunk(role_delta(tools=isinstance(event, ToolUse)))]
        self._role_sent = True
        if isinstance(event, Token | Text):
            chunks.append(self._delta_chunk({"content": event.text}))
        elif isinstance(event, Thinking):
            chunks.append(self._delta_chunk({"reasoning_content": event.text}))
        elif isinstance(event, ToolUse):
            self._tool_calls += 1
            chunks.append(self._delta_chunk({"tool_calls": [_tool_call(self._tool_calls - 1, event)]}))
        else:
            chunks.append(self._delta_chunk({}, finish_reason(event.stop_reason)))
            if self.include_usage:
                chunks.append({**self._chunk([]), "usage": usage_object(event.usage)})
        return chunks


class CompletionAccumulator(_Finished):
    """Folds one stream's events into a single ``chat.completion`` dict (the non-streaming response)."""

    def __init__(self, model: str, completion_id: str, created: int) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self._done = None
        self._text: list[str] = []
        self._thinking: list[str] = []
        self._tool_calls: list[dict[str, Any]] = []

    def add(self, event: Event) -> None:
        """Take in the next event of the stream."""
        self._accept(event)
        if isinstance(event, Token | Text):
            self._text.append(event.text)
        elif isinstance(event, Thinking):
            self._thinking.append(event.text)
        elif isinstance(event, ToolUse):
            call = _tool_call(len(self._tool_calls), event)
            del call["index"]
            self._tool_calls.append(call)

    def result(self) -> dict[str, Any]:
        """The ``chat.completion`` object; content is null when the answer is only tool calls."""
        done = self._require_done()
        text = "".join(self._text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if self._tool_calls and not text else text,
            "refusal": None,
        }
        if self._thinking:
            message["reasoning_content"] = "".join(self._thinking)
        if self._tool_calls:
            message["tool_calls"] = self._tool_calls
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason(done.stop_reason),
                }
            ],
            "usage": usage_object(done.usage),
        }
