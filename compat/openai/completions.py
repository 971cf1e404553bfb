"""``POST /v1/completions`` (OpenAI's legacy text completions): bodies in, ``text_completion`` objects out.

The prompt is raw text: each prompt becomes one engine request whose `ResolvedV2.prompt` is that text and whose
``messages`` are empty, so a backend evaluates it as it is, with no chat template (a backend that cannot take
raw text refuses it; the proxy checks `BackendCapabilities.raw_prompt`). ``prompt`` may be a list of strings:
each is its own choice, in order (``index`` 0, 1, ...). Token-id prompts (arrays of integers) are not
implemented. ``max_tokens`` defaults to 16, as OpenAI's does.

Fields, as in chat (docs/api-compat.md lists each): `MAPPED_FIELDS` are validated and honoured where the
engine can, `UNSUPPORTED_FIELDS` are refused when set, with ``n > 1``, ``best_of > 1``, ``logprobs`` and
``suffix`` refused with `UnsupportedParameter` because no backend here produces several choices per prompt,
log probabilities or infill. ``echo`` puts each prompt in front of its choice's text.

Encoding: `CompletionEncoder` turns the events of each prompt's generation, one prompt after another, into
``text_completion`` chunks (streaming: one chunk per text event, a finish chunk per choice with its
``finish_reason``, then a usage chunk with ``choices: []`` only with ``stream_options.include_usage``) or, with
`CompletionEncoder.result`, the one non-streaming object.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from adapters.types import Event, ResolvedV2, StopReason, Text, Thinking, Token, ToolUse, Usage

from .._fields import (
    as_list,
    as_str,
    invalid_type,
    item_path,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..fates import FieldFates
from .chat_response import usage_object
from .sampling import parse_sampling
from .sse import SSE_DONE, sse_error, sse_event

DEFAULT_MAX_TOKENS = 16

MAPPED_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "n",
        "best_of",
        "logprobs",
        "echo",
        "suffix",
        "stream",
        "stream_options",
        "user",
    }
)

UNSUPPORTED_FIELDS: dict[str, str] = {}

IGNORED_FIELDS: dict[str, str] = {}

FATES = FieldFates(MAPPED_FIELDS, UNSUPPORTED_FIELDS, IGNORED_FIELDS)

_FINISH_REASONS: dict[StopReason, str] = {
    StopReason.END: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "stop",
}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated legacy completions request: one engine request per prompt, in choice order."""

    model: str
    stream: bool
    include_usage: bool
    echo: bool
    requests: tuple[ResolvedV2, ...]
    user: str | None = None


def parse_completion_request(body: object) -> CompletionRequest:
    """Validate a decoded completions body. Raises only `RequestValidationError` (incl. `UnsupportedParameter`)."""
    body = FATES.check(body)
    model = as_str(required(body, "model"), "model", non_empty=True)
    prompts = _prompts(required(body, "prompt"))
    if (opt_int(body, "n", low=1) or 1) > 1:
        raise UnsupportedParameter("Only one choice per prompt is supported ('n' must be 1).", param="n")
    if (opt_int(body, "best_of", low=1) or 1) > 1:
        raise UnsupportedParameter("'best_of' must be 1: one candidate is generated per prompt.", param="best_of")
    if opt_int(body, "logprobs", low=0, high=5) is not None:
        raise UnsupportedParameter(
            "Log probabilities are not supported ('logprobs' must be null).", param="logprobs"
        )
    if opt_str(body, "suffix"):
        raise UnsupportedParameter("No backend of this server fills in text before a 'suffix'.", param="suffix")
    max_tokens = opt_int(body, "max_tokens", low=1)
    sampling = replace(
        parse_sampling({key: value for key, value in body.items() if key != "max_completion_tokens"}),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
    )
    stream = bool(opt_bool(body, "stream"))
    options = opt_object(body, "stream_options")
    include_usage = False
    if options is not None:
        include_usage = bool(opt_bool(options, "include_usage", "stream_options"))
        opt_bool(options, "include_obfuscation", "stream_options")
    return CompletionRequest(
        model=model,
        stream=stream,
        include_usage=stream and include_usage,
        echo=bool(opt_bool(body, "echo")),
        requests=tuple(ResolvedV2(model=model, messages=(), sampling=sampling, prompt=p) for p in prompts),
        user=opt_str(body, "user"),
    )


def _prompts(value: object, path: str = "prompt") -> tuple[str, ...]:
    """``prompt``: a string or a non-empty array of strings; token-id prompts are not implemented."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of strings", value)
    items = as_list(value, path, non_empty=True)
    if any(isinstance(item, int | list) and not isinstance(item, bool) for item in items):
        raise UnsupportedParameter("Prompts given as token ids are not supported; send text.", param=path)
    return tuple(as_str(item, item_path(path, i)) for i, item in enumerate(items))


def new_completion_id() -> str:
    """A fresh legacy completion id in OpenAI's form: ``cmpl-`` and 24 random hex digits."""
    return "cmpl-" + secrets.token_hex(12)


class CompletionEncoder:
    """Encodes the generations of a request's prompts, one after another, as ``text_completion`` chunks."""

    def __init__(self, completion: CompletionRequest, completion_id: str, created: int) -> None:
        self.model = completion.model
        self.completion_id = completion_id
        self.created = created
        self._include_usage = completion.include_usage
        self._prompts = [r.prompt or "" for r in completion.requests] if completion.echo else None
        self._count = len(completion.requests)
        self._index = 0
        self._started = False
        self._texts: list[list[str]] = [[] for _ in completion.requests]
        self._finish: list[str] = []
        self._usage = Usage()

    @property
    def done(self) -> bool:
        """True once every prompt's generation has ended with `Done`."""
        return self._index == self._count

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def _choice(self, text: str, reason: str | None) -> dict[str, Any]:
        return {"index": self._index, "text": text, "logprobs": None, "finish_reason": reason}

    def _text(self, text: str) -> list[dict[str, Any]]:
        if not self._started and self._prompts is not None:
            text = self._prompts[self._index] + text
        self._started = True
        self._texts[self._index].append(text)
        return [self._chunk([self._choice(text, None)])]

    def encode(self, event: Event) -> list[dict[str, Any]]:
        """The chunks for one event of the current prompt's generation."""
        if self.done:
            raise RuntimeError(f"event after the last prompt's Done: {type(event).__name__}")
        if isinstance(event, Token | Text):
            return self._text(event.text)
        if isinstance(event, Thinking | ToolUse):
            return []  # no place for them in a text completion; raw prompts never ask for tools
        chunks = [] if self._started or self._prompts is None else self._text("")
        reason = _FINISH_REASONS[event.stop_reason]
        chunks.append(self._chunk([self._choice("", reason)]))
        self._finish.append(reason)
        self._usage = Usage(
            self._usage.prompt_tokens + event.usage.prompt_tokens,
            self._usage.completion_tokens + event.usage.completion_tokens,
            self._usage.cached_tokens + event.usage.cached_tokens,
            self._usage.reasoning_tokens + event.usage.reasoning_tokens,
        )
        self._index += 1
        self._started = False
        if self._index == self._count and self._include_usage:
            chunks.append({**self._chunk([]), "usage": usage_object(self._usage)})
        return chunks

    def result(self) -> dict[str, Any]:
        """The non-streaming ``text_completion`` object (every prompt must be done)."""
        if not self.done:
            raise RuntimeError("not every prompt has finished")
        choices = [
            {"index": i, "text": "".join(texts), "logprobs": None, "finish_reason": reason}
            for i, (texts, reason) in enumerate(zip(self._texts, self._finish, strict=True))
        ]
        return {**self._chunk(choices), "usage": usage_object(self._usage)}


class CompletionSSE:
    """A `CompletionEncoder` framed as SSE ``data:`` events: chunks, then ``data: [DONE]`` after the last
    prompt's `Done`; a failure after the first chunk is one ``data: {"error": ...}`` event and no ``[DONE]``."""

    def __init__(self, encoder: CompletionEncoder) -> None:
        self.encoder = encoder

    def encode(self, event: Event) -> bytes:
        return b"".join(sse_event(chunk) for chunk in self.encoder.encode(event))

    def end(self) -> bytes:
        return SSE_DONE

    def error(self, exc: BaseException, request_id: str | None) -> bytes:
        return sse_error(exc, request_id)
