"""``POST /v1/completions`` (OpenAI's legacy text completions): bodies in, ``text_completion`` objects out.

The prompt is raw text: each prompt becomes one engine request whose `ResolvedV2.prompt` is that text and whose
``messages`` are empty, so a backend evaluates it as it is, with no chat template (a backend that cannot take
raw text refuses it; the proxy checks `BackendCapabilities.raw_prompt`). ``prompt`` may be a list of strings:
each is its own engine request, in order. Token-id prompts (arrays of integers) are not implemented.
``max_tokens`` defaults to 16, as OpenAI's does.

Fields, as in chat (docs/api-compat.md lists each, `FATES` is the table): every field is mapped. ``n`` asks
each prompt's request for that many choices (the backend's capability ``choices`` decides; choice ``j`` of
prompt ``i`` has ``index`` ``i * n + j``, OpenAI's order). ``best_of`` may only equal ``n`` (candidates are
not ranked here). ``logprobs: k`` asks for each sampled token's log probability and the ``k`` most likely
alternatives (capability ``logprobs``), answered in the legacy shape ``{tokens, token_logprobs,
top_logprobs: [{token: logprob}], text_offset}``. ``echo`` puts each prompt in front of its choices' text;
with ``logprobs`` it would need the prompt tokens' log probabilities, which no backend reports, so the pair is
refused. ``suffix`` (fill-in-the-middle) is refused: no backend here does infill.

Encoding: `CompletionEncoder` turns the events of each prompt's generation, one prompt after another, into
``text_completion`` chunks (streaming: one chunk per text event, a finish chunk per choice with its
``finish_reason``, then a usage chunk with ``choices: []`` only with ``stream_options.include_usage``) or, with
`CompletionEncoder.result`, the one non-streaming object.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from adapters.types import Done, Event, ResolvedV2, StopReason, Text, Thinking, Token, TokenLogprob, ToolUse, Usage

from .._fields import (
    as_list,
    as_str,
    invalid_type,
    invalid_value,
    item_path,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..fates import FieldFates
from .chat_response import choice_ends, usage_object
from .sampling import MAX_CHOICES, parse_sampling
from .sse import SSE_DONE, sse_error, sse_event

DEFAULT_MAX_TOKENS = 16
#: OpenAI's bound on the legacy ``logprobs`` (alternatives per token).
MAX_LOGPROBS = 5

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

#: Keys `parse_sampling` reads with chat's meaning, which are not (or not that) in a legacy completion.
_NOT_CHAT_SAMPLING = frozenset({"max_completion_tokens", "logprobs", "top_logprobs"})

_FINISH_REASONS: dict[StopReason, str] = {
    StopReason.END: "stop",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.MAX_TOKENS: "length",
    StopReason.TOOL_USE: "stop",
}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated legacy completions request: one engine request per prompt, in prompt order, each asking
    for ``n`` choices (``sampling.n``)."""

    model: str
    stream: bool
    include_usage: bool
    echo: bool
    requests: tuple[ResolvedV2, ...]
    user: str | None = None

    @property
    def n(self) -> int:
        """Choices per prompt."""
        return self.requests[0].sampling.n

    @property
    def logprobs(self) -> bool:
        """True when the answer carries log probabilities."""
        return self.requests[0].sampling.top_logprobs is not None


def parse_completion_request(body: object) -> CompletionRequest:
    """Validate a decoded completions body. Raises only `RequestValidationError` (incl. `UnsupportedParameter`)."""
    body = FATES.check(body)
    model = as_str(required(body, "model"), "model", non_empty=True)
    prompts = _prompts(required(body, "prompt"))
    n = opt_int(body, "n", low=1, high=MAX_CHOICES) or 1
    _check_best_of(opt_int(body, "best_of", low=1, high=MAX_CHOICES), n)
    top_logprobs = opt_int(body, "logprobs", low=0, high=MAX_LOGPROBS)
    echo = bool(opt_bool(body, "echo"))
    if echo and top_logprobs is not None:
        raise UnsupportedParameter(
            "'echo' with 'logprobs' needs the log probabilities of the prompt's tokens, which this server does "
            "not report; ask for one of them.",
            param="echo",
        )
    if opt_str(body, "suffix"):
        raise UnsupportedParameter(
            "No backend of this server has fill-in-the-middle (infill): 'suffix' is not supported.", param="suffix"
        )
    max_tokens = opt_int(body, "max_tokens", low=1)
    sampling = replace(
        parse_sampling({key: value for key, value in body.items() if key not in _NOT_CHAT_SAMPLING}),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        top_logprobs=top_logprobs,
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
        echo=echo,
        requests=tuple(ResolvedV2(model=model, messages=(), sampling=sampling, prompt=p) for p in prompts),
        user=opt_str(body, "user"),
    )


def _check_best_of(best_of: int | None, n: int) -> None:
    """``best_of`` generates that many candidates and returns the ``n`` best: only ``best_of == n`` (nothing to
    rank) is honoured; fewer than ``n`` is OpenAI's own 400."""
    if best_of is None or best_of == n:
        return
    if best_of < n:
        raise invalid_value("best_of", f"expected a value greater than or equal to 'n' ({n}).")
    raise UnsupportedParameter(
        f"'best_of' above 'n' is not supported: candidates are not ranked here ('best_of' must be {n}).",
        param="best_of",
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


@dataclass(slots=True)
class _Choice:
    """What one choice has produced so far: its text pieces and, when asked for, its legacy logprobs lists."""

    index: int
    echo: str | None
    started: bool = False
    length: int = 0
    texts: list[str] = field(default_factory=list)
    logprobs: dict[str, list[Any]] | None = None
    finish: str | None = None

    def add(self, text: str, records: tuple[TokenLogprob, ...] | None) -> tuple[str, dict[str, list[Any]] | None]:
        """Take in a piece of text (the echoed prompt first, once); returns it and its logprobs lists."""
        if not self.started and self.echo is not None:
            text = self.echo + text
        self.started = True
        piece = None
        if self.logprobs is not None:
            piece = legacy_logprobs(records or (), self.length + len(text))
            for key, values in piece.items():
                self.logprobs[key] += values
        self.length += len(text)
        self.texts.append(text)
        return text, piece

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "text": "".join(self.texts),
            "logprobs": self.logprobs,
            "finish_reason": self.finish,
        }


def legacy_logprobs(records: tuple[TokenLogprob, ...], end: int) -> dict[str, list[Any]]:
    """The legacy ``logprobs`` lists for the tokens whose text ends at character ``end`` of the choice:
    ``tokens``, ``token_logprobs``, ``top_logprobs`` (one ``{token: logprob}`` per token) and ``text_offset``
    (where each token starts in the choice's text)."""
    offsets = []
    start = end - sum(len(r.token) for r in records)
    for r in records:
        offsets.append(start)
        start += len(r.token)
    return {
        "tokens": [r.token for r in records],
        "token_logprobs": [r.logprob for r in records],
        "top_logprobs": [{t.token: t.logprob for t in r.top} for r in records],
        "text_offset": offsets,
    }


class CompletionEncoder:
    """Encodes the generations of a request's prompts, one after another, as ``text_completion`` chunks."""

    def __init__(self, completion: CompletionRequest, completion_id: str, created: int) -> None:
        self.model = completion.model
        self.completion_id = completion_id
        self.created = created
        self._include_usage = completion.include_usage
        self._n = completion.n
        logprobs = completion.logprobs
        self._choices = [
            _Choice(
                i * self._n + j, r.prompt if completion.echo else None, logprobs=_empty() if logprobs else None
            )
            for i, r in enumerate(completion.requests)
            for j in range(self._n)
        ]
        self._count = len(completion.requests)
        self._prompt = 0
        self._usage = Usage()

    @property
    def done(self) -> bool:
        """True once every prompt's generation has ended with `Done`."""
        return self._prompt == self._count

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }

    def _text(self, choice: int, text: str, records: tuple[TokenLogprob, ...] | None = None) -> dict[str, Any]:
        state = self._choices[self._prompt * self._n + choice]
        text, logprobs = state.add(text, records)
        return self._chunk([{"index": state.index, "text": text, "logprobs": logprobs, "finish_reason": None}])

    def encode(self, event: Event) -> list[dict[str, Any]]:
        """The chunks for one event of the current prompt's generation."""
        if self.done:
            raise RuntimeError(f"event after the last prompt's Done: {type(event).__name__}")
        if isinstance(event, Token):
            return [self._text(0, event.text)]
        if isinstance(event, Text):
            return [self._text(event.choice, event.text, event.logprobs)]
        if isinstance(event, Thinking | ToolUse):
            return []  # no place for them in a text completion; raw prompts never ask for tools
        return self._finish(event)

    def _finish(self, done: Done) -> list[dict[str, Any]]:
        chunks = []
        for end in choice_ends(done):
            state = self._choices[self._prompt * self._n + end.index]
            if not state.started and state.echo is not None:
                chunks.append(self._text(end.index, ""))
            state.finish = _FINISH_REASONS[end.stop_reason]
            choice = {"index": state.index, "text": "", "logprobs": None, "finish_reason": state.finish}
            chunks.append(self._chunk([choice]))
        self._usage = Usage(
            self._usage.prompt_tokens + done.usage.prompt_tokens,
            self._usage.completion_tokens + done.usage.completion_tokens,
            self._usage.cached_tokens + done.usage.cached_tokens,
            self._usage.reasoning_tokens + done.usage.reasoning_tokens,
        )
        self._prompt += 1
        if self.done and self._include_usage:
            chunks.append({**self._chunk([]), "usage": usage_object(self._usage)})
        return chunks

    def result(self) -> dict[str, Any]:
        """The non-streaming ``text_completion`` object (every prompt must be done)."""
        if not self.done:
            raise RuntimeError("not every prompt has finished")
        return {**self._chunk([c.result() for c in self._choices]), "usage": usage_object(self._usage)}


def _empty() -> dict[str, list[Any]]:
    return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}


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
