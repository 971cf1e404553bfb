"""Engine events as OpenAI ``chat.completion.chunk`` dicts (streaming) or one ``chat.completion`` dict.

Theory of operation (streaming): a `ChunkEncoder` is made once per stream with the stream's single ``id`` and
``created``, and turns each event into zero or more chunk dicts, in order:

    first content event   -> one chunk whose delta also carries ``"role": "assistant"``
    Token / Text          -> delta ``{"content": text}``
    Thinking              -> delta ``{"reasoning_content": text}`` (the field DeepSeek, vLLM and llama.cpp use);
                             a piece without text (a reasoning signature or redacted reasoning, which only
                             Anthropic's dialect can carry back) -> nothing
    ToolUse               -> delta ``{"tool_calls": [{index, id, type, function: {name, arguments}}]}``, one
                             whole call per chunk, ``index`` counting calls from 0
    Done                  -> (a role chunk with empty content if nothing came before), the finish chunk with
                             an empty delta and ``finish_reason``, then, only with ``include_usage``, a usage
                             chunk whose ``choices`` is ``[]``

Content chunks never carry a ``usage`` key. ``logprobs`` is null unless the request asked for log probabilities
(then each content chunk carries ``{"content": [...], "refusal": null}`` for the tokens its text completes);
``system_fingerprint`` is null, as OpenAI sends when it has none. With ``n > 1`` each event's ``choice`` is the
chunk's ``index`` (role chunk once per choice) and `Done` gives one finish chunk per choice. Events after
``Done`` are a bug of the caller and raise `RuntimeError`. `CompletionAccumulator` folds the same events into
the non-streaming form.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.types import (
    ChoiceEnd,
    Done,
    Event,
    StopReason,
    Text,
    Thinking,
    Token,
    TokenLogprob,
    ToolUse,
    TopLogprob,
    Usage,
)

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
    """The delta of a choice's first chunk, as OpenAI sends it: empty content, or null when a tool call follows."""
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


def _logprob(record: TokenLogprob | TopLogprob) -> dict[str, Any]:
    return {"token": record.token, "logprob": record.logprob, "bytes": list(record.bytes)}


def logprobs_content(records: Iterable[TokenLogprob]) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs.content`` entries for engine log-probability records."""
    return [{**_logprob(r), "top_logprobs": [_logprob(t) for t in r.top]} for r in records]


def choice_ends(done: Done) -> tuple[ChoiceEnd, ...]:
    """Every choice's end: ``done.choices``, or the single choice 0."""
    return done.choices or (ChoiceEnd(0, done.stop_reason),)


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
        """OpenAI's ``finish_reason`` of the finished stream (of choice 0)."""
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
        self._role_sent: set[int] = set()
        self._tool_calls: dict[int, int] = {}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def _delta_chunk(
        self, delta: dict[str, Any], reason: str | None = None, choice: int = 0, logprobs: Any = None
    ) -> dict[str, Any]:
        return self._chunk([{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": reason}])

    def _open(self, last: int, *, tools: bool) -> list[dict[str, Any]]:
        """Role chunks for every choice up to ``last`` not seen yet: choices first appear in index order (the
        openai SDK's stream state requires it), each with a role chunk of its own."""
        chunks = []
        for index in range(last + 1):
            if index not in self._role_sent:
                self._role_sent.add(index)
                chunks.append(self._delta_chunk(role_delta(tools=tools and index == last), choice=index))
        return chunks

    def encode(self, event: Event) -> list[dict[str, Any]]:
        """The chunks for one event, in the order they must be sent."""
        self._accept(event)
        if isinstance(event, Done):
            chunks: list[dict[str, Any]] = []
            for end in choice_ends(event):
                chunks += self._open(end.index, tools=False)
                chunks.append(self._delta_chunk({}, finish_reason(end.stop_reason), choice=end.index))
            if self.include_usage:
                chunks.append({**self._chunk([]), "usage": usage_object(event.usage)})
            return chunks
        if isinstance(event, Thinking) and not event.text:
            return []
        index = event.choice if isinstance(event, Text | ToolUse) else 0
        chunks = self._open(index, tools=isinstance(event, ToolUse))
        if isinstance(event, Token):
            chunks.append(self._delta_chunk({"content": event.text}))
        elif isinstance(event, Text):
            logprobs = None
            if event.logprobs is not None:
                logprobs = {"content": logprobs_content(event.logprobs), "refusal": None}
            chunks.append(self._delta_chunk({"content": event.text}, choice=index, logprobs=logprobs))
        elif isinstance(event, Thinking):
            chunks.append(self._delta_chunk({"reasoning_content": event.text}))
        else:
            calls = self._tool_calls.get(index, 0)
            self._tool_calls[index] = calls + 1
            chunks.append(self._delta_chunk({"tool_calls": [_tool_call(calls, event)]}, choice=index))
        return chunks


@dataclass(slots=True)
class _Choice:
    """What one choice of a non-streaming response has gathered."""

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None

    def result(self, index: int, reason: StopReason) -> dict[str, Any]:
        text = "".join(self.text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if self.tool_calls and not text else text,
            "refusal": None,
        }
        thinking = "".join(self.thinking)
        if thinking:
            message["reasoning_content"] = thinking
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        logprobs = None
        if self.logprobs is not None:
            logprobs = {"content": logprobs_content(self.logprobs), "refusal": None}
        return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason(reason)}


class CompletionAccumulator(_Finished):
    """Folds one stream's events into a single ``chat.completion`` dict (the non-streaming response)."""

    def __init__(self, model: str, completion_id: str, created: int) -> None:
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self._done = None
        self._choices: dict[int, _Choice] = {}

    def _choice(self, index: int) -> _Choice:
        return self._choices.setdefault(index, _Choice())

    def add(self, event: Event) -> None:
        """Take in the next event of the stream."""
        self._accept(event)
        if isinstance(event, Token):
            self._choice(0).text.append(event.text)
        elif isinstance(event, Text):
            choice = self._choice(event.choice)
            choice.text.append(event.text)
            if event.logprobs is not None:
                choice.logprobs = [*(choice.logprobs or ()), *event.logprobs]
        elif isinstance(event, Thinking):
            self._choice(0).thinking.append(event.text)
        elif isinstance(event, ToolUse):
            choice = self._choice(event.choice)
            call = _tool_call(len(choice.tool_calls), event)
            del call["index"]
            choice.tool_calls.append(call)

    def result(self) -> dict[str, Any]:
        """The ``chat.completion`` object; content is null when the answer is only tool calls."""
        done = self._require_done()
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [self._choice(end.index).result(end.index, end.stop_reason) for end in choice_ends(done)],
            "usage": usage_object(done.usage),
        }
