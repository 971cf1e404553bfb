"""The mock backend: deterministic answers, paced or instant, with scripted failures.

It exists so that the daemon, its clients and its tests can be exercised end to end without a model: every
behaviour a real backend has that a client can observe (streaming, stop reasons, usage, tool calls, JSON output,
embeddings, failures before and after the first token, slow boots, cancellation) can be produced on demand,
and counters in `status()` show what happened to each generation.

Config keys (the kind-specific keys of a ``kind = "mock"`` table, DESIGN.md section 5):

- ``reply``: ``"echo"`` (default) repeats the last user message's text (or the raw-text prompt of a legacy
  completion); a list of strings is sent as those
  tokens whatever the prompt.
- ``token_delay_ms`` (default 0): sleep before each token, so a reply of n tokens takes n delays.
- ``boot_delay_ms`` (default 0): sleep in `boot`.
- ``fail``: ``"none"`` (default), ``"pre-stream"`` (raise `Unavailable` before any event), ``"mid-stream"``
  (raise `Unavailable` after ``fail_after_tokens`` content events, or after all of them when the answer is
  shorter, so a mid-stream mock never sends `Done`), ``"boot"`` (`boot` raises).
- ``fail_after_tokens`` (default 3, at least 1).
- ``embed_dim`` (default 0 = no embeddings): length of the deterministic unit vectors `embed` returns.

Echo tokenisation: one whitespace-delimited word per token, each word carrying the whitespace that follows it
(whitespace before the first word belongs to the first token), so ``"hello  big world"`` becomes
``["hello  ", "big ", "world"]`` and the joined tokens always equal the text. Whitespace-only text is one token;
empty text is no token.

Structured answers: a forced tool call carries, and a ``json_schema`` answer is, the simplest value valid for the
schema (`adapters.schema_example`); a schema with no such value is a 400 naming it, never a crash.

Choices and log probabilities (capabilities ``choices`` and ``logprobs``, so clients can exercise them without a
model): ``n > 1`` sends the same answer as every choice, its content events interleaved choice by choice (each
tagged with its ``choice``), and one `Done` listing every choice's end. With ``top_logprobs`` set, each text
event carries one record for its token (`mock_logprob`): the token itself is the most likely, with a log
probability that depends only on its length, followed by made-up alternatives ``<alt1>``, ``<alt2>``... each
one nat less likely, ``top_logprobs`` entries in all.

Usage is honest: ``prompt_tokens`` counts the whitespace-delimited words of every message's text,
``completion_tokens`` counts the content events actually sent (one for a tool call), across all choices.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, islice
from typing import Any, Self, TypeVar

import trio

from .backend import Backend
from .errors import InvalidRequest, NotReady, Unavailable, Unsupported
from .options import OptionReader
from .schema_example import NoExample, example, example_arguments
from .types import (
    BackendCapabilities,
    ChoiceEnd,
    Done,
    EmbedResolved,
    EmbedResult,
    Event,
    Resolved,
    ResolvedV2,
    ResponseFormatKind,
    Role,
    SamplingParams,
    StopReason,
    Text,
    Token,
    TokenLogprob,
    ToolChoiceMode,
    ToolSpec,
    ToolUse,
    TopLogprob,
    Usage,
    embed_width,
)

FAIL_MODES = ("none", "pre-stream", "mid-stream", "boot")

_TOKEN = re.compile(r"\s*\S+\s*|\s+")
#: Where one token ends and the next begins: after whitespace, before a word.
_BOUNDARY = re.compile(r"\s(?=\S)")
#: Long texts are split and counted this many characters (or up to the next token boundary) at a time.
CHUNK_CHARS = 64 * 1024


def _chunks(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` spans covering ``text``, each ending at a token boundary, about `CHUNK_CHARS` long.

    Splitting a long prompt (one 7.9 MiB message) in one ``findall`` or ``split`` is one C call that holds
    the GIL for a second: run in a worker thread, it still stalled the event loop all that time. Piece by
    piece, other threads get the GIL in between.
    """
    start = 0
    while start < len(text):
        found = _BOUNDARY.search(text, start + CHUNK_CHARS) if start + CHUNK_CHARS < len(text) else None
        end = found.end() if found is not None else len(text)
        yield start, end
        start = end


def iter_echo_tokens(text: str) -> Iterator[str]:
    """The tokens the echo reply streams for ``text`` (see the module docstring), split a chunk at a time."""
    for start, end in _chunks(text):
        yield from _TOKEN.findall(text, start, end)


def echo_tokens(text: str) -> list[str]:
    """Split ``text`` into the tokens the echo reply streams (see the module docstring); joined they equal it."""
    return list(iter_echo_tokens(text))


#: A prompt of at least this many characters (plus `MESSAGE_COST_CHARS` per message) is prepared - split into
#: echo tokens, counted - in a worker thread, as a real backend tokenizes off the event loop: near the body cap
#: (one 8 MiB message, or 240,000 short ones) that work takes seconds and stalled every other client.
PREPARE_IN_THREAD_CHARS = 256 * 1024
MESSAGE_COST_CHARS = 64

T = TypeVar("T")


def prompt_size(messages: Sequence[Any], text: Callable[[Any], str]) -> int:
    """How much preparing a prompt of ``messages`` costs, in characters (see `PREPARE_IN_THREAD_CHARS`).

    Only a short prompt has its texts measured: a long message list is past the threshold by its count alone.
    """
    if len(messages) * MESSAGE_COST_CHARS >= PREPARE_IN_THREAD_CHARS:
        return len(messages) * MESSAGE_COST_CHARS
    return sum(len(text(m)) + MESSAGE_COST_CHARS for m in messages)


async def off_loop_if_large(size: int, prepare: Callable[[], T]) -> T:
    """``prepare()``: inline for a small prompt, in a worker thread from `PREPARE_IN_THREAD_CHARS` on."""
    if size < PREPARE_IN_THREAD_CHARS:
        return prepare()
    return await trio.to_thread.run_sync(prepare)


def mock_logprob(token: str, top: int) -> TokenLogprob:
    """The mock's log-probability record for a sent ``token`` with ``top`` alternatives (module docstring)."""
    logprob = -len(token) / 16
    raw = token.encode()
    alternatives = [TopLogprob(token, logprob, raw)]
    alternatives += [TopLogprob(f"<alt{i}>", logprob - i, f"<alt{i}>".encode()) for i in range(1, top)]
    return TokenLogprob(token, logprob, tuple(alternatives[:top]), raw)


def as_choices(events: Sequence[Text | ToolUse], sampling: SamplingParams) -> list[Event]:
    """``events`` (one choice's answer) as every choice of ``sampling.n``, interleaved choice by choice, text
    events carrying their log-probability record when ``sampling.top_logprobs`` asks for it."""
    top = sampling.top_logprobs
    choices: list[Event] = []
    for event in events:
        for choice in range(sampling.n):
            if isinstance(event, ToolUse):
                choices.append(replace(event, id=f"{event.id}_{choice}" if choice else event.id, choice=choice))
            else:
                logprobs = None if top is None else (mock_logprob(event.text, top),)
                choices.append(Text(event.text, choice, logprobs))
    return choices


def count_words(texts: Iterable[str]) -> int:
    """The mock's token count for a prompt: whitespace-delimited words across all the texts."""
    return sum(len(text[start:end].split()) for text in texts for start, end in _chunks(text))


def embedding(text: str, dimensions: int) -> tuple[float, ...]:
    """A deterministic unit vector for ``text``: SHAKE-256 of its UTF-8, read as ``dimensions`` components.

    A shorter vector is the normalised prefix of a longer one (as OpenAI's ``dimensions`` truncation is). Every
    raw component is an odd multiple of 2**-32, never zero, so the norm never is either.
    """
    digest = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    raw = [(int.from_bytes(digest[i : i + 4], "little") + 0.5) / 2**31 - 1.0 for i in range(0, len(digest), 4)]
    norm = math.sqrt(math.fsum(x * x for x in raw))
    return tuple(x / norm for x in raw)


@dataclass(frozen=True, slots=True)
class Limited:
    """What a model streaming some tokens sends under a request's limits, and which limit ended it."""

    tokens: list[str]
    reason: StopReason
    #: The stop sequence that cut the text (with `StopReason.STOP_SEQUENCE` only).
    stop_sequence: str | None = None


def apply_limits(tokens: Sequence[str], sampling: SamplingParams) -> Limited:
    """The tokens a model streaming ``tokens`` sends under ``sampling``'s stop sequences and ``max_tokens``.

    The text ends just before the earliest stop sequence (the sequence itself is not sent; the token it starts
    in is cut there); then at most ``max_tokens`` tokens are kept. The stop reason is the limit that ended the
    text, `StopReason.END` when none did.
    """
    text = "".join(tokens)
    cuts = sorted((index, stop) for stop in sampling.stop if stop and (index := text.find(stop)) >= 0)
    kept = list(tokens)
    reason = StopReason.END
    matched: str | None = None
    if cuts:
        cut, matched = cuts[0]
        starts = accumulate((len(token) for token in tokens), initial=0)
        pieces = (token[: max(0, cut - start)] for token, start in zip(tokens, starts, strict=False))
        kept = [piece for piece in pieces if piece]
        reason = StopReason.STOP_SEQUENCE
    if sampling.max_tokens is not None and len(kept) > sampling.max_tokens:
        return Limited(kept[: sampling.max_tokens], StopReason.MAX_TOKENS)
    return Limited(kept, reason, matched)


@dataclass(frozen=True, slots=True)
class MockOptions:
    """The validated config of a mock backend; ``reply`` is None for echo."""

    reply: tuple[str, ...] | None = None
    token_delay_s: float = 0.0
    boot_delay_s: float = 0.0
    fail: str = "none"
    fail_after_tokens: int = 3
    embed_dim: int = 0

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> MockOptions:
        """Validate a config table; `BackendConfigError` names the first bad key."""
        read = OptionReader("mock", options, _KEYS)
        return cls(
            reply=_reply(read),
            token_delay_s=read.number("token_delay_ms", 0, unit="milliseconds") / 1000,
            boot_delay_s=read.number("boot_delay_ms", 0, unit="milliseconds") / 1000,
            fail=read.choice("fail", "none", FAIL_MODES),
            fail_after_tokens=read.integer("fail_after_tokens", 3, minimum=1),
            embed_dim=read.integer("embed_dim", 0, minimum=0),
        )


_KEYS = frozenset({"reply", "token_delay_ms", "boot_delay_ms", "fail", "fail_after_tokens", "embed_dim"})


def _reply(read: OptionReader) -> tuple[str, ...] | None:
    value = read.get("reply", "echo")
    if value == "echo":
        return None
    if isinstance(value, list | tuple) and all(isinstance(token, str) for token in value):
        return tuple(value)
    raise read.invalid("reply", '"echo" or a list of strings', value)


class MockBackend(Backend):
    """A deterministic backend configured by `MockOptions`; see the module docstring."""

    name = "mock"
    option_keys = _KEYS

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self._booted = False
        self._stopping = False
        self._started = 0
        self._completed = 0
        self._cancelled = 0
        self._failed = 0
        self._active = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(MockOptions.parse(options))

    async def boot(self) -> None:
        await trio.sleep(self.options.boot_delay_s)
        if self.options.fail == "boot":
            raise Unavailable("mock backend configured to fail at boot (fail = 'boot')")
        self._booted = True

    def ready(self) -> bool:
        return self._booted and not self._stopping

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the Backend contract takes a deadline
        """Mark the backend not ready; the mock holds no resources, so there is nothing to wait for."""
        self._stopping = True
        await trio.lowlevel.checkpoint()

    def capabilities(self) -> BackendCapabilities:
        dim = self.options.embed_dim
        return BackendCapabilities(
            v2=True, tools=True, json_schema=True, raw_prompt=True, choices=True, logprobs=True,
            embed=dim > 0, embed_dimensions=dim or None,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """Generation counters: started, completed, cancelled (got trio.Cancelled), failed, active (running)."""
        return {
            "started": self._started,
            "completed": self._completed,
            "cancelled": self._cancelled,
            "failed": self._failed,
            "active": self._active,
        }

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        def prepare() -> tuple[int, list[Event], Limited]:
            prompt_tokens = count_words(m.content for m in req.messages)
            last_user = _last([m.content for m in req.messages if m.role is Role.USER])
            limited = apply_limits(self._reply_tokens(last_user, req.sampling), req.sampling)
            return prompt_tokens, [Token(t) for t in limited.tokens], limited

        async def answer() -> None:
            size = prompt_size(req.messages, lambda m: m.content)
            prompt_tokens, events, limited = await off_loop_if_large(size, prepare)
            await self._emit(send, events, limited, prompt_tokens)

        await self._run(answer)

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        # A raw-text prompt (legacy completions) is what the echo repeats; otherwise the last user message.
        def prepare() -> tuple[int, list[Event], Limited]:
            texts = [req.prompt] if req.prompt is not None else [m.text() for m in req.messages]
            prompt_tokens = count_words(texts)
            tool = _forced_tool(req)
            if tool is not None:
                param = f"tools[{req.tools.index(tool)}].function.parameters"
                arguments = _json(example_arguments, tool.parameters, param)
                call = ToolUse(id=f"call_mock_{self._started}", name=tool.name, arguments=arguments)
                return prompt_tokens, as_choices([call], req.sampling), Limited([], StopReason.TOOL_USE)
            last_user = (
                texts[0]
                if req.prompt is not None
                else _last([m.text() for m in req.messages if m.role is Role.USER])
            )
            fmt = req.response_format
            tokens = self._reply_tokens(last_user, req.sampling if fmt.kind is ResponseFormatKind.TEXT else None)
            if fmt.kind is ResponseFormatKind.JSON_OBJECT:
                tokens = echo_tokens(json.dumps({"echo": "".join(tokens)}))
            elif fmt.kind is ResponseFormatKind.JSON_SCHEMA:
                tokens = echo_tokens(_json(example, fmt.schema or {}, "response_format.json_schema.schema"))
            limited = apply_limits(tokens, req.sampling)
            return prompt_tokens, as_choices([Text(t) for t in limited.tokens], req.sampling), limited

        async def answer() -> None:
            raw = req.prompt
            size = len(raw) if raw is not None else prompt_size(req.messages, lambda m: m.text())
            prompt_tokens, events, limited = await off_loop_if_large(size, prepare)
            await self._emit(send, events, limited, prompt_tokens, req.sampling.n)

        await self._run(answer)

    async def count_tokens(self, req: ResolvedV2) -> int:
        """The mock's token count: the words of every message's text, as its generations report them."""
        self._require_ready()
        await trio.lowlevel.checkpoint()
        return count_words(m.text() for m in req.messages)

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        self._require_ready()
        await trio.lowlevel.checkpoint()
        dim = self.options.embed_dim
        if dim == 0:
            raise Unsupported(
                f"model {req.model!r} does not support embeddings (mock embed_dim = 0)", param="model"
            )
        if req.token_ids:
            raise Unsupported(
                "the mock backend has no vocabulary: send text, not token ids",
                param="input",
                code="unsupported_parameter",
            )
        wanted = embed_width(req.dimensions, dim)
        vectors = tuple(embedding(text, wanted) for text in req.inputs)
        return EmbedResult(vectors=vectors, prompt_tokens=count_words(req.inputs))

    # --- internals --------------------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if not self.ready():
            state = "is stopping" if self._stopping else "has not finished booting"
            raise NotReady(f"backend {self.name!r} {state}")

    def _reply_tokens(self, last_user: str, sampling: SamplingParams | None) -> list[str]:
        """The reply's tokens; only as many as ``sampling`` lets through, when given (``max_tokens`` and no stop
        sequence: the first ``max_tokens`` and one more, so `apply_limits` still sees the limit cut the text),
        rather than splitting a 7.9 MiB prompt whole to send one token of it."""
        if self.options.reply is not None:
            return list(self.options.reply)
        if sampling is None or sampling.max_tokens is None or any(sampling.stop):
            return echo_tokens(last_user)
        return list(islice(iter_echo_tokens(last_user), sampling.max_tokens + 1))

    async def _run(self, answer: Callable[[], Awaitable[None]]) -> None:
        """Run one generation, keeping the counters that `status` reports."""
        self._require_ready()
        self._started += 1
        self._active += 1
        try:
            if self.options.fail == "pre-stream":
                raise Unavailable("mock backend configured to fail before streaming (fail = 'pre-stream')")
            await answer()
        except trio.Cancelled:
            self._cancelled += 1
            raise
        except Exception:
            self._failed += 1
            raise
        else:
            self._completed += 1
        finally:
            self._active -= 1

    async def _emit(
        self,
        send: trio.MemorySendChannel[Event],
        events: Sequence[Event],
        limited: Limited,
        prompt_tokens: int,
        n: int = 1,
    ) -> None:
        """Send ``events`` (one per token delay), then `Done` (listing the ``n`` choices' ends when ``n > 1``) -
        or fail part way when configured to."""
        fail_at = min(self.options.fail_after_tokens, len(events)) if self.options.fail == "mid-stream" else None
        for event in events[:fail_at]:
            await trio.sleep(self.options.token_delay_s)
            await send.send(event)
        if fail_at is not None:
            raise Unavailable(f"mock backend configured to fail mid-stream, after {fail_at} tokens")
        usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=len(events))
        ends = tuple(ChoiceEnd(i, limited.reason) for i in range(n)) if n > 1 else ()
        await send.send(Done(limited.reason, usage, limited.stop_sequence, ends))


def _json(make: Callable[[Any], Any], schema: Any, param: str) -> str:
    """The mock's value for ``schema`` as strict JSON; a schema it has no value for is the client's 400."""
    try:
        return json.dumps(make(schema), allow_nan=False)
    except NoExample as exc:
        message = f"the mock backend cannot produce a value for this schema: {exc}"
        raise InvalidRequest(message, param=param) from exc


def _last(texts: Sequence[str]) -> str:
    return texts[-1] if texts else ""


def _forced_tool(req: ResolvedV2) -> ToolSpec | None:
    """The tool the request forces a call to (first one for "required"), or None to answer in text."""
    mode = req.tool_choice.mode
    if mode in (ToolChoiceMode.AUTO, ToolChoiceMode.NONE):
        return None
    if mode is ToolChoiceMode.REQUIRED:
        candidates = req.tools
    else:
        candidates = tuple(tool for tool in req.tools if tool.name == req.tool_choice.name)
    if not candidates:
        raise InvalidRequest(
            f"tool_choice {str(mode)!r} matches none of the {len(req.tools)} offered tools", param="tool_choice"
        )
    return candidates[0]
