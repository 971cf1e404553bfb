"""The trio side of one generation: turn a planned request into an engine `Job`, then relay what it produces.

`prepare` (blocking, in a worker thread so a long prompt does not stall the event loop) tokenizes the prompt,
refuses one that leaves no room in the context (``context_length_exceeded``), caps the token budget to the
context (each choice has its own ``n_ctx`` cells), and has llama.cpp check the grammars, so every client mistake
is a 400 before the engine sees the job.

`relay` submits the job and reads its items from an unbounded channel the decode thread fills through
``run_sync_soon``; text goes on through ``on_piece`` (which awaits the consumer: a slow reader makes its own
items pile up, and at `engine.OUTPUT_BOUND` its sequences pause - nobody else waits). While the consumer has
room, a piece skips that channel: ``offer`` hands it straight to the consumer from the ``run_sync_soon``
callback, so the relay task is not woken for it (two scheduler passes fewer per token). When the request is
cancelled (client gone, stop deadline), the job is marked cancelled and the relay waits - shielded, for at
most `RELEASE_TIMEOUT` - for the engine to confirm that the job's slots are free, so the admission slot is
released only when the model is no longer working for this request.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ..errors import InvalidRequest
from ..types import SamplingParams, StopReason
from .engine import ChoiceDone, Engine, Item, Job, JobDone, JobFailed, Piece
from .errors import Phase, translate
from .grammar import validate_in_llama
from .model import Model
from .routing import Mode
from .sampling import check_logit_bias
from .template import Prompt

#: How long a cancelled request waits for the decode thread to drop its job (one step is far shorter).
RELEASE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Plan:
    """What to generate and how its output is constrained (built on the trio side, never mutated)."""

    prompt: Prompt
    sampling: SamplingParams
    mode: Mode = Mode.TEXT
    grammar: str | None = None  # GBNF applied from the first token
    call_grammar: str | None = None  # AUTO only: the grammar a call restarts under
    grammar_param: str = "response_format"
    default_seed: int | None = None
    apply_user_stops: bool = True
    prompt_param: str = "messages"


def prepare(model: Model, plan: Plan, n_ctx: int, parallel: int) -> Job:
    """The engine job for ``plan`` (blocking; see the module docstring). Raises `InvalidRequest`."""
    sampling = plan.sampling
    if sampling.n > parallel:
        raise InvalidRequest(
            f"n must be at most {parallel} for this model (its 'parallel' option)", param="n", code="invalid_value"
        )
    try:
        tokens = model.tokenize(plan.prompt.text, add_bos=plan.prompt.add_bos)
    except Exception as exc:
        raise translate(exc, Phase.TOKENIZE) from exc
    room = n_ctx - len(tokens)
    if room < 1:
        raise InvalidRequest(
            f"This model's maximum context length is {n_ctx} tokens. However, your messages resulted in "
            f"{len(tokens)} tokens. Please reduce the length of the messages.",
            param=plan.prompt_param,
            code="context_length_exceeded",
        )
    # max_tokens larger than the room left is capped to it (finish_reason "length" when reached).
    budget = min(sampling.max_tokens, room) if sampling.max_tokens is not None else room
    check_logit_bias(sampling, model.n_vocab)
    for grammar in (plan.grammar, plan.call_grammar):
        if grammar:
            validate_in_llama(model.vocab, grammar, plan.grammar_param)
    stops: list[tuple[str, StopReason]] = [(s, StopReason.END) for s in plan.prompt.stop]
    if plan.apply_user_stops:
        stops += [(s, StopReason.STOP_SEQUENCE) for s in sampling.stop]
    seed = sampling.seed if sampling.seed is not None else plan.default_seed
    return Job(
        tokens=tokens,
        sampling=sampling,
        seed=seed,
        budget=budget,
        deliver=_unset,
        mode=plan.mode,
        grammar=plan.grammar,
        call_grammar=plan.call_grammar,
        grammar_param=plan.grammar_param,
        stops=tuple(stops),
    )


def _unset(item: Item) -> None:  # pragma: no cover - replaced by `relay` before the job is submitted
    raise RuntimeError("job submitted without a relay")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job ended: each choice's end, in index order, and the prompt's token counts."""

    choices: tuple[ChoiceDone, ...]
    prompt_tokens: int
    cached_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)


async def relay(
    engine: Engine,
    job: Job,
    on_piece: Callable[[Piece], Awaitable[None]],
    offer: Callable[[Piece], bool] | None = None,
) -> Outcome:
    """Run ``job`` on ``engine`` and hand its pieces to ``on_piece`` (see the module docstring).

    ``offer``, when given, is tried first for a piece, in the event loop's callback, as soon as the decode
    thread delivers it: it passes the piece on without waiting and returns True, or returns False when the
    consumer has no room (or is gone); it must never raise. It is offered a piece only while nothing waits in
    the relay's own channel, so pieces keep their order; a refused piece and everything after it go the
    waiting way (``on_piece`` in this task) until that channel is empty again. The bound on what a slow reader
    buffers is unchanged: the consumer's channel, then `engine.OUTPUT_BOUND` items before its sequences pause.
    """
    send_items, items = trio.open_memory_channel[Item](math.inf)
    token = trio.lowlevel.current_trio_token()
    queued = 0  # items in the channel or in the relay's hands: while any, `offer` is not tried
    direct = offer

    def taken() -> None:
        """One more item reached the consumer: a sequence paused on the output bound may go on."""
        job.consumed += 1
        if job.paused:
            engine.wake()

    def put(item: Item) -> None:  # called in the event loop (`run_sync_soon`)
        nonlocal queued
        if not queued and direct is not None and isinstance(item, Piece) and direct(item):
            taken()
            return
        queued += 1
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            send_items.send_nowait(item)  # (suppressed: the request is gone; the engine has its cancel)

    def deliver(item: Item) -> None:  # called in the decode thread
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(put, item)

    job.deliver = deliver
    ends: dict[int, ChoiceDone] = {}
    engine.submit(job)
    finished = False
    try:
        while True:
            item = await items.receive()
            taken()
            if isinstance(item, Piece):
                await on_piece(item)
            elif isinstance(item, ChoiceDone):
                ends[item.choice] = item
            elif isinstance(item, JobFailed):
                finished = True
                raise item.error
            else:
                finished = True
                return Outcome(tuple(ends[i] for i in sorted(ends)), item.prompt_tokens, item.cached_tokens)
            queued -= 1
    finally:
        direct = None  # from here on every item comes to this task (the shielded wait below drains them)
        if not finished:
            engine.cancel(job)
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + RELEASE_TIMEOUT
                while not isinstance(await items.receive(), JobDone | JobFailed):
                    pass
        items.close()
        send_items.close()
