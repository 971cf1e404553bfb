"""`LlamaCppBackend`: one warm llama.cpp model serving ``parallel`` generations at once (continuous batching).

Lifecycle: ``from_options`` only validates; ``boot`` loads the model in a worker thread (``status()`` says
``loading``, then ``ready`` or ``failed: <why>``), resolves its chat template and starts the decode thread
(`engine.Engine`); ``stop`` fails running generations with a 503, ends the decode thread and frees the model.

A generation:
- builds the prompt (chat template, or the raw text of a legacy completion) and any grammar on the trio side,
  then tokenizes and checks it in a worker thread (`requests.prepare`), so a bad request fails fast with a
  400, before it takes a slot;
- is submitted to the engine, which decodes it in the same ``llama_decode`` batches as every other running
  sequence, and relayed back (`requests.relay`): text as it is generated, kept output (a tool call, a JSON
  answer that may be one) at the end of its choice, then one `Done` with the usage of all choices;
- when cancelled (client disconnect, stop deadline, ``chat.completion.cancel``), leaves the batch at the next
  step; the request's task returns only once the engine has dropped it, so the admission slot is released
  when the model is no longer working for it.

Embedding models stay on llama-cpp-python's high-level ``Llama`` (`embeddings.py`), one batch at a time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Self

import trio

from ..backend import Backend
from ..errors import InvalidRequest, NotReady, Unsupported
from ..types import (
    BackendCapabilities,
    ChoiceEnd,
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
from .engine import Engine, Piece
from .errors import Phase, UnusableOutput, translate
from .grammar import check_tools, schema_to_gbnf, tool_call_gbnf, tool_call_schema
from .loading import install_native_log
from .model import ContextShape, Model
from .options import OPTION_KEYS, LlamaCppOptions, parse_options
from .requests import Outcome, Plan, prepare, relay
from .routing import Mode
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
        self._llama: Any = None  # embedding models only
        self._model: Model | None = None
        self._engine: Engine | None = None
        self._template: ChatTemplate | None = None
        self._state = "configured"
        self._embed_lock = trio.Lock()
        self._embed_dimensions: int | None = None
        #: llama.cpp's progress of the running load, 0.0 to 1.0 (written by the loading thread).
        self._load_progress = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(parse_options(options))

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def boot(self) -> None:
        """Load the model in a worker thread; fail with a clear message (also shown in `status`)."""
        self._state = "loading"
        try:
            loaded, template = await trio.to_thread.run_sync(self._load, abandon_on_cancel=False)
        except Exception as exc:
            self._state = f"failed: {exc}"
            raise
        try:
            await trio.lowlevel.checkpoint()  # boot cancelled while loading: do not keep the model
        except BaseException:
            loaded.close()
            self._state = "failed: boot cancelled"
            raise
        if isinstance(loaded, Model):
            self._model = loaded
            self._engine = Engine(loaded, self.options.parallel, self.options.n_batch)
            self._engine.start()
        else:
            self._llama = loaded
        self._template = template
        self._state = "ready"

    def _load(self) -> tuple[Any, ChatTemplate | None]:
        """Blocking: load the model (and resolve its chat template, for chat models)."""
        path = self.options.model_path
        try:
            if not path.is_file():
                raise FileNotFoundError(str(path))
            if self.options.embedding:
                from .embeddings import embedding_dimensions, load_embedding_llama

                llama = load_embedding_llama(path, n_threads=self.options.n_threads)
                self._embed_dimensions = embedding_dimensions(llama)
                return llama, None
            options = self.options
            shape = ContextShape(
                n_ctx=options.n_ctx,
                parallel=options.parallel,
                n_batch=min(options.n_batch, options.n_ctx),
                n_threads=options.n_threads,
                n_threads_batch=options.n_threads_batch,
            )
            install_native_log()  # llama.cpp's own log goes through logging, as for the embedding models
            model = Model(path, shape, self._on_load_progress)
        except Exception as exc:
            raise translate(exc, Phase.LOAD) from exc
        try:
            template = resolve_template(model, self.options.chat_format, str(path))
        except BaseException:
            model.close()
            raise
        return model, template

    def _on_load_progress(self, fraction: float) -> None:
        self._load_progress = fraction

    def ready(self) -> bool:
        return self._state == "ready"

    def capabilities(self) -> BackendCapabilities:
        if self.options.embedding:
            return BackendCapabilities(embed=True, embed_dimensions=self._embed_dimensions, embed_token_ids=True)
        return BackendCapabilities(
            v2=True, tools=True, json_schema=True, raw_prompt=True, choices=True, logprobs=True
        )

    def status(self) -> dict[str, Any]:
        engine = self._engine
        status: dict[str, Any] = {
            "state": self._state,
            "load_progress": 1.0 if self._state == "ready" else self._load_progress,
            "model_path": str(self.options.model_path),
            "chat_template": self._template.source if self._template is not None else None,
            "embedding": self.options.embedding,
            "n_ctx": self.options.n_ctx,
            "n_threads": self.options.n_threads,
        }
        if self.options.embedding:
            return status
        counters = engine.counters if engine is not None else None
        status.update(
            parallel=self.options.parallel,
            kv_cells=self._model.cells if self._model is not None else self.options.n_ctx * self.options.parallel,
            active=engine.running if engine is not None else 0,
            sequences_running=engine.running if engine is not None else 0,
            waiting_for_slot=engine.waiting if engine is not None else 0,
            slots=engine.slot_status() if engine is not None else [],
        )
        if counters is not None:
            status.update(
                generations=counters.generations,
                tokens_decoded=counters.tokens_decoded,
                prompt_batches=counters.prompt_batches,
                prompt_tokens=counters.prompt_tokens,
                cached_tokens=counters.cached_tokens,
                cancelled=counters.cancelled,
                steps=counters.steps,
                aborted_steps=counters.aborted_steps,
                kv_full=counters.kv_full,
            )
        return status

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the Backend contract takes a deadline
        """Stop running generations (their clients get a 503) and release the model within ``timeout``."""
        if self._state in ("stopping", "stopped"):
            return
        self._state = "stopping"
        with trio.move_on_after(timeout) as scope:
            engine, self._engine = self._engine, None
            if engine is not None:
                engine.stop()
                await trio.to_thread.run_sync(engine.join, timeout, abandon_on_cancel=True)
            async with self._embed_lock:
                llama, self._llama = self._llama, None
                if llama is not None:
                    await trio.to_thread.run_sync(llama.close, abandon_on_cancel=False)
            self._state = "stopped"
        if scope.cancelled_caught and engine is not None:
            self._engine = engine  # still winding down: the thread frees the model when it ends

    # --- generation -----------------------------------------------------------------------------------------

    def _require_ready(self) -> Engine:
        engine = self._engine
        if engine is not None and engine.error is not None and self._state == "ready":
            self._state = f"failed: the decode loop ended ({type(engine.error).__name__}: {engine.error})"
        if self._state != "ready":
            raise NotReady(f"the llamacpp backend is not ready ({self._state})")
        if self._engine is None:
            raise Unsupported(
                f"{self.options.model_path.name} is an embedding model; it does not answer chat completions",
                param="model",
            )
        return self._engine

    def _chat_ready(self) -> ChatTemplate:
        self._require_ready()
        assert self._template is not None
        return self._template

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        template = self._chat_ready()
        if req.sampling.n > 1:
            raise InvalidRequest("n > 1 needs a v2 request (choice indexes)", param="n")
        plan = Plan(
            template.render(conversation.v1_messages(req.messages)), req.sampling, default_seed=self.options.seed
        )

        async def on_piece(piece: Piece) -> None:
            await send.send(Token(piece.text))

        outcome = await self._run(plan, on_piece, lambda piece: _offer(send, Token(piece.text)))
        end = outcome.choices[0]
        await send.send(Done(end.stop_reason, _usage(outcome)))

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        template = self._chat_ready()
        if req.prompt is not None:
            assert self._model is not None
            output, plan = _Output.STREAM, self._raw_plan(req, self._model)
            tools: tuple[ToolSpec, ...] = ()
        else:
            tools = _offered_tools(req)
            output, plan = self._plan(req, _v2_prompt(template, req, tools), tools)

        def text(piece: Piece) -> Text:
            return Text(piece.text, piece.choice, piece.logprobs)

        async def on_piece(piece: Piece) -> None:
            await send.send(text(piece))

        outcome = await self._run(plan, on_piece, lambda piece: _offer(send, text(piece)))
        ends: list[ChoiceEnd] = []
        for end in outcome.choices:
            reason = end.stop_reason
            if output is _Output.FORCED_CALL or output is _Output.JSON_OR_CALL or end.is_call:
                call = conversation.parse_call(end.text, tools)
                if call is not None:
                    await send.send(conversation.with_choice(call, end.choice))
                    reason = StopReason.TOOL_USE
                elif output is _Output.JSON_OR_CALL:
                    if end.text:  # a JSON answer (cut short by max_tokens: finish_reason "length")
                        await send.send(Text(end.text, end.choice, end.logprobs))
                elif end.stop_reason is not StopReason.MAX_TOKENS:
                    raise UnusableOutput("the model's tool call did not parse")
                # A call cut short by max_tokens ends with finish_reason "length" and no content: its partial
                # JSON is never shown as if it were the answer.
            ends.append(ChoiceEnd(end.choice, reason))
        await send.send(Done(ends[0].stop_reason, _usage(outcome), choices=tuple(ends) if len(ends) > 1 else ()))

    def _raw_plan(self, req: ResolvedV2, model: Model) -> Plan:
        """A legacy completion: the prompt text as it is (BOS as the model wants it), no template stops."""
        assert req.prompt is not None
        prompt = Prompt(text=req.prompt, stop=(), add_bos=model.add_bos)
        return Plan(prompt, req.sampling, default_seed=self.options.seed, prompt_param="prompt")

    def _plan(self, req: ResolvedV2, prompt: Prompt, tools: tuple[ToolSpec, ...]) -> tuple[_Output, Plan]:
        """Choose how a v2 request's output is constrained and delivered.

        - ``tool_choice`` required/named: the tool-call grammar from the first token; the call is kept whole.
        - ``auto`` with tools: the first non-blank character decides (the router's ``AUTO`` mode); with a JSON
          ``response_format`` as well, the grammar allows either a call or the answer, kept whole, then parsed.
        - otherwise: the ``response_format`` grammar, if any, and the text streams.
        """
        limits = self.options.grammar_limits
        seed = self.options.seed
        mode = req.tool_choice.mode
        if tools and mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
            grammar = tool_call_gbnf(tools, limits)
            plan = Plan(prompt, req.sampling, Mode.WHOLE, grammar, None, "tools", seed, apply_user_stops=False)
            return _Output.FORCED_CALL, plan
        answer = _answer_schema(req)
        if tools and answer is not None:
            check_tools(tools, limits)
            schema = {"anyOf": [tool_call_schema(tools), answer]}
            grammar = schema_to_gbnf(schema, limits, "response_format", prop_order=("name", "arguments"))
            return _Output.JSON_OR_CALL, Plan(prompt, req.sampling, Mode.WHOLE, grammar, None, default_seed=seed)
        if tools:
            call_grammar = tool_call_gbnf(tools, limits)
            return _Output.STREAM, Plan(prompt, req.sampling, Mode.AUTO, None, call_grammar, "tools", seed)
        answer_grammar = schema_to_gbnf(answer, limits, _answer_param(req)) if answer is not None else None
        return _Output.STREAM, Plan(prompt, req.sampling, Mode.TEXT, answer_grammar, None, default_seed=seed)

    async def _run(
        self, plan: Plan, on_piece: Callable[[Piece], Any], offer: Callable[[Piece], bool] | None = None
    ) -> Outcome:
        """Prepare ``plan`` in a worker thread, then run it on the engine (see the module docstring)."""
        engine = self._require_ready()
        job = await trio.to_thread.run_sync(
            prepare, engine.model, plan, self.options.n_ctx, self.options.parallel, abandon_on_cancel=False
        )
        engine = self._require_ready()  # stop() may have begun meanwhile
        return await relay(engine, job, on_piece, offer)

    async def count_tokens(self, req: ResolvedV2) -> int:
        """The tokens of the prompt `generate_v2` would evaluate for ``req``: the chat template applied over the
        rendered conversation, the tools note included (or the raw prompt), tokenized as decoding does."""
        template = self._chat_ready()
        model = self._model
        assert model is not None
        if req.prompt is not None:
            prompt = Prompt(text=req.prompt, stop=(), add_bos=model.add_bos)
        else:
            prompt = _v2_prompt(template, req, _offered_tools(req))
        self._require_ready()  # the decode thread frees the model only after stop(); tokenizing reads the vocab
        tokens = await trio.to_thread.run_sync(
            lambda: model.tokenize(prompt.text, add_bos=prompt.add_bos), abandon_on_cancel=False
        )
        return len(tokens)

    # --- embeddings -----------------------------------------------------------------------------------------

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        if not self.options.embedding:
            raise Unsupported(f"model {req.model!r} does not support embeddings", param="model")
        if self._state != "ready":
            raise NotReady(f"the llamacpp backend is not ready ({self._state})")
        from .embeddings import embed_request

        async with self._embed_lock:
            if self._state != "ready":
                raise NotReady(f"the llamacpp backend is not ready ({self._state})")
            vectors, tokens = await trio.to_thread.run_sync(
                embed_request, self._llama, req, abandon_on_cancel=False
            )
        return EmbedResult(vectors=tuple(tuple(v) for v in vectors), prompt_tokens=tokens)


def _offer(send: trio.MemorySendChannel[Event], event: Event) -> bool:
    """Put ``event`` in the consumer's channel if it has room now: True if it did (`requests.relay`'s
    ``offer``; never raises, never waits: a full or closed channel is left to the relay task)."""
    try:
        send.send_nowait(event)
    except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True


def _v2_prompt(template: ChatTemplate, req: ResolvedV2, tools: tuple[ToolSpec, ...]) -> Prompt:
    """The prompt text of a v2 request (one place, so counting and generating see the same prompt)."""
    return template.render(conversation.v2_messages(req.messages, tools, req.tool_choice))


def _usage(outcome: Outcome) -> Usage:
    return Usage(outcome.prompt_tokens, outcome.completion_tokens, cached_tokens=outcome.cached_tokens)


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
