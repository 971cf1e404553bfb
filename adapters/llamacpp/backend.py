"""`LlamaCppBackend`: one warm llama.cpp model, generations in a worker thread, cancellation within one token.

Lifecycle: ``from_options`` only validates; ``boot`` loads the model in a worker thread (``status()`` says
``loading``, then ``ready`` or ``failed: <why>``) and resolves its chat template; ``stop`` stops any running
generation and releases the model (``Llama.close``).

A generation (`_run`):
- builds the prompt (chat template; a raw-text prompt is taken as it is) and any grammar on the trio side,
  so a bad request fails fast, before waiting for the model;
- takes the backend's lock (a `Llama` is not thread-safe; the daemon's admission also runs one at a time by
  default, the lock makes it a property of the backend rather than of its configuration);
- runs `decode.decode` in ONE worker thread with ``abandon_on_cancel=False``: the call returns only once the
  thread has, so the lock - and the daemon's admission slot after it - is released only when the model is no
  longer in use;
- next to the thread, a watcher task sets the generation's ``cancel`` event when the request is cancelled
  (client disconnect, stop deadline, ``chat.completion.cancel``); the thread checks it after every token.
  Text reaches the consumer through the bounded channel it was given (``trio.from_thread.run(send.send, ...)``),
  which also raises ``Cancelled`` in the thread if the request is cancelled while it waits for room.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from typing import Any, Self

import outcome
import trio

from ..backend import Backend
from ..errors import InvalidRequest, NotReady, Unavailable, Unsupported
from ..types import (
    BackendCapabilities,
    Done,
    EmbedResolved,
    EmbedResult,
    Event,
    Resolved,
    ResolvedV2,
    ResponseFormatKind,
    StopReason,
    Text,
    Token,
    ToolChoiceMode,
    ToolSpec,
    Usage,
)
from . import conversation
from .decode import DecodeCounters, DecodeJob, DecodeResult, Mode, decode
from .errors import Phase, UnusableOutput, translate
from .grammar import check_tools, schema_to_gbnf, tool_call_gbnf, tool_call_schema
from .loading import load_llama
from .options import OPTION_KEYS, LlamaCppOptions, parse_options
from .template import ChatTemplate, Prompt, resolve_template


class _Output(enum.Enum):
    """How a v2 generation's output reaches the client."""

    STREAM = "stream"  # text (or JSON) streams as it is generated; AUTO may turn into a call
    FORCED_CALL = "forced_call"  # a tool call, kept whole and sent as one ToolUse
    JSON_OR_CALL = "json_or_call"  # JSON kept whole, then sent as a ToolUse if it is a call, else as Text


class LlamaCppBackend(Backend):
    """A llama.cpp model served through llama-cpp-python (config ``kind = "llamacpp"``)."""

    name = "llamacpp"
    option_keys = frozenset(OPTION_KEYS)

    def __init__(self, options: LlamaCppOptions) -> None:
        self.options = options
        self._llama: Any = None
        self._template: ChatTemplate | None = None
        self._state = "configured"
        self._lock = trio.Lock()
        self._cancel_events: set[threading.Event] = set()
        self._embed_dimensions: int | None = None
        self.counters = DecodeCounters()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(parse_options(options))

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def boot(self) -> None:
        """Load the model in a worker thread; fail with a clear message (also shown in `status`)."""
        self._state = "loading"
        try:
            llama, template = await trio.to_thread.run_sync(self._load, abandon_on_cancel=False)
        except Exception as exc:
            self._state = f"failed: {exc}"
            raise
        try:
            await trio.lowlevel.checkpoint()  # boot cancelled while loading: do not keep the model
        except BaseException:
            llama.close()
            self._state = "failed: boot cancelled"
            raise
        self._llama, self._template = llama, template
        self._state = "ready"

    def _load(self) -> tuple[Any, ChatTemplate | None]:
        """Blocking: construct the `Llama` and resolve its chat template (chat models only)."""
        path = self.options.model_path
        try:
            if not path.is_file():
                raise FileNotFoundError(str(path))
            if self.options.embedding:
                from .embeddings import embedding_dimensions, load_embedding_llama

                llama = load_embedding_llama(path, n_threads=self.options.n_threads)
                self._embed_dimensions = embedding_dimensions(llama)
                return llama, None
            llama = load_llama(
                model_path=str(path),
                n_ctx=self.options.n_ctx,
                n_batch=min(self.options.n_batch, self.options.n_ctx),
                n_threads=self.options.n_threads,
                n_threads_batch=self.options.n_threads_batch,
            )
        except Exception as exc:
            raise translate(exc, Phase.LOAD) from exc
        try:
            template = resolve_template(llama, self.options.chat_format, str(path))
        except BaseException:
            llama.close()
            raise
        return llama, template

    def ready(self) -> bool:
        return self._state == "ready"

    def capabilities(self) -> BackendCapabilities:
        if self.options.embedding:
            return BackendCapabilities(embed=True, embed_dimensions=self._embed_dimensions, embed_token_ids=True)
        return BackendCapabilities(v2=True, tools=True, json_schema=True, raw_prompt=True)

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "model_path": str(self.options.model_path),
            "chat_template": self._template.source if self._template is not None else None,
            "embedding": self.options.embedding,
            "n_ctx": int(self._llama.n_ctx()) if self._llama is not None else self.options.n_ctx,
            "n_threads": self.options.n_threads,
            "active": self.counters.threads_running,
            "generations": self.counters.generations,
            "tokens_decoded": self.counters.tokens_decoded,
            "prompt_batches": self.counters.prompt_batches,
            "threads_running": self.counters.threads_running,
            "cancelled": self.counters.cancelled,
            "waiting_for_model": self._lock.statistics().tasks_waiting,
        }

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the Backend contract takes a deadline
        """Stop running generations (their clients get an error) and release the model within ``timeout``."""
        if self._state in ("stopping", "stopped"):
            return
        self._state = "stopping"
        for event in self._cancel_events:
            event.set()
        with trio.move_on_after(timeout):
            async with self._lock:
                llama, self._llama = self._llama, None
                if llama is not None:
                    await trio.to_thread.run_sync(llama.close, abandon_on_cancel=False)
                self._state = "stopped"

    # --- generation -----------------------------------------------------------------------------------------

    def _require_ready(self) -> None:
        if self._state != "ready":
            raise NotReady(f"the llamacpp backend is not ready ({self._state})")

    def _chat_ready(self) -> ChatTemplate:
        self._require_ready()
        if self._template is None:
            raise Unsupported(
                f"{self.options.model_path.name} is an embedding model; it does not answer chat completions",
                param="model",
            )
        return self._template

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        template = self._chat_ready()
        job = DecodeJob(
            prompt=template.render(conversation.v1_messages(req.messages)),
            sampling=req.sampling,
            default_seed=self.options.seed,
        )
        result = await self._run(job, send, Token)
        await send.send(Done(result.stop_reason, Usage(result.prompt_tokens, result.completion_tokens)))

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        template = self._chat_ready()
        tools = _offered_tools(req)
        prompt = _v2_prompt(template, req, tools)
        output, job = self._plan(req, prompt, tools)
        result = await self._run(job, send, Text)
        usage = Usage(result.prompt_tokens, result.completion_tokens)
        if output is _Output.FORCED_CALL or output is _Output.JSON_OR_CALL or result.is_call:
            call = conversation.parse_call(result.text, tools)
            if call is not None:
                await send.send(call)
                await send.send(Done(StopReason.TOOL_USE, usage))
                return
            if output is _Output.JSON_OR_CALL:
                if result.text:  # a JSON answer (cut short by max_tokens: finish_reason "length")
                    await send.send(Text(result.text))
            elif result.stop_reason is not StopReason.MAX_TOKENS:
                raise UnusableOutput("the model's tool call did not parse")
            # A call cut short by max_tokens ends with finish_reason "length" and no content: its partial JSON
            # is never shown as if it were the answer.
        await send.send(Done(result.stop_reason, usage))

    def _plan(self, req: ResolvedV2, prompt: Prompt, tools: tuple[ToolSpec, ...]) -> tuple[_Output, DecodeJob]:
        """Choose how a v2 request's output is constrained and delivered.

        - ``tool_choice`` required/named: the tool-call grammar from the first token; the call is kept whole.
        - ``auto`` with tools: the first non-blank character decides (decode's ``AUTO`` mode); with a JSON
          ``response_format`` as well, the grammar allows either a call or the answer, kept whole, then parsed.
        - otherwise: the ``response_format`` grammar, if any, and the text streams.
        """
        limits = self.options.grammar_limits
        seed = self.options.seed
        mode = req.tool_choice.mode
        if tools and mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
            grammar = tool_call_gbnf(tools, limits)
            job = DecodeJob(prompt, req.sampling, Mode.WHOLE, grammar, None, "tools", seed, apply_user_stops=False)
            return _Output.FORCED_CALL, job
        answer = _answer_schema(req)
        if tools and answer is not None:
            check_tools(tools, limits)
            schema = {"anyOf": [tool_call_schema(tools), answer]}
            grammar = schema_to_gbnf(schema, limits, "response_format", prop_order=("name", "arguments"))
            return _Output.JSON_OR_CALL, DecodeJob(
                prompt, req.sampling, Mode.WHOLE, grammar, None, default_seed=seed
            )
        if tools:
            call_grammar = tool_call_gbnf(tools, limits)
            return _Output.STREAM, DecodeJob(prompt, req.sampling, Mode.AUTO, None, call_grammar, "tools", seed)
        answer_grammar = schema_to_gbnf(answer, limits, _answer_param(req)) if answer is not None else None
        return _Output.STREAM, DecodeJob(prompt, req.sampling, Mode.TEXT, answer_grammar, None, default_seed=seed)

    async def _run(
        self, job: DecodeJob, send: trio.MemorySendChannel[Event], event_type: Callable[[str], Event]
    ) -> DecodeResult:
        """Run ``job`` in one worker thread (see the module docstring); return once that thread has returned."""

        def emit(text: str) -> None:
            try:
                trio.from_thread.run(send.send, event_type(text))
            except trio.Cancelled:
                cancel.set()  # so the thread knows why it is unwinding (counted as cancelled)
                raise

        async def in_thread() -> DecodeResult:
            return await trio.to_thread.run_sync(
                decode, self._llama, job, emit, cancel, self.counters, abandon_on_cancel=False
            )

        cancel = threading.Event()
        async with self._lock:
            self._require_ready()
            self._cancel_events.add(cancel)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_set_when_cancelled, cancel)
                    # Captured, not raised here: an error leaving the nursery body would come out wrapped in an
                    # ExceptionGroup. A Cancelled captured here is not lost: the nursery re-raises it on exit.
                    finished = await outcome.acapture(in_thread)
                    nursery.cancel_scope.cancel()
            finally:
                self._cancel_events.discard(cancel)
        result: DecodeResult = finished.unwrap()
        if result.cancelled:
            await trio.lowlevel.checkpoint()  # raises Cancelled when the request was cancelled
            raise Unavailable("the llamacpp backend is stopping", code="backend_unavailable", status=503)
        return result

    async def count_tokens(self, req: ResolvedV2) -> int:
        """The tokens of the prompt `generate_v2` would evaluate for ``req``: the chat template applied over the
        rendered conversation, the tools note included, tokenized as decoding does."""
        prompt = _v2_prompt(self._chat_ready(), req, _offered_tools(req))
        async with self._lock:  # the model must not be closed (stop) while its vocabulary is in use
            self._require_ready()
            return await trio.to_thread.run_sync(_prompt_tokens, self._llama, prompt, abandon_on_cancel=False)

    # --- embeddings -----------------------------------------------------------------------------------------

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        if not self.options.embedding:
            raise Unsupported(f"model {req.model!r} does not support embeddings", param="model")
        self._require_ready()
        from .embeddings import embed_request

        async with self._lock:
            self._require_ready()
            vectors, tokens = await trio.to_thread.run_sync(
                embed_request, self._llama, req, abandon_on_cancel=False
            )
        return EmbedResult(vectors=tuple(tuple(v) for v in vectors), prompt_tokens=tokens)


async def _set_when_cancelled(cancel: threading.Event) -> None:
    """Sleep until cancelled (the request, or the generation finishing), then tell the worker thread to stop."""
    try:
        await trio.sleep_forever()
    finally:
        cancel.set()


def _v2_prompt(template: ChatTemplate, req: ResolvedV2, tools: tuple[ToolSpec, ...]) -> Prompt:
    """The prompt text of a v2 request (one place, so counting and generating see the same prompt); a raw-text
    prompt (legacy completions) is taken as it is, with no chat template."""
    if req.prompt is not None:
        return Prompt(text=req.prompt, stop=(), add_bos=True)
    return template.render(conversation.v2_messages(req.messages, tools, req.tool_choice))


def _prompt_tokens(llama: Any, prompt: Prompt) -> int:
    """Blocking: the number of tokens ``prompt`` takes, tokenized as `decode` tokenizes it."""
    return len(llama.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=True))


def _offered_tools(req: ResolvedV2) -> tuple[ToolSpec, ...]:
    """The tools the model may call: none for ``tool_choice: none``, only the named one for a named choice."""
    choice = req.tool_choice
    if choice.mode is ToolChoiceMode.NONE:
        return ()
    if choice.mode is ToolChoiceMode.NAMED:
        named = tuple(tool for tool in req.tools if tool.name == choice.name)
        if not named:
            raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not in tools", param="tool_choice")
        return named
    if choice.mode is ToolChoiceMode.REQUIRED and not req.tools:
        raise InvalidRequest("tool_choice is 'required' but no tools were given", param="tool_choice")
    return req.tools


def _answer_schema(req: ResolvedV2) -> dict[str, Any] | None:
    """The JSON schema the answer must match per ``response_format`` (``None`` for plain text)."""
    fmt = req.response_format
    if fmt.kind is ResponseFormatKind.JSON_SCHEMA:
        return dict(fmt.schema) if fmt.schema is not None else {"type": "object"}
    if fmt.kind is ResponseFormatKind.JSON_OBJECT:
        return {"type": "object"}
    return None


def _answer_param(req: ResolvedV2) -> str:
    if req.response_format.kind is ResponseFormatKind.JSON_SCHEMA:
        return "response_format.json_schema.schema"
    return "response_format"
