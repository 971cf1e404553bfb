"""KV-full on the real SmolLM2 model: when ``llama_decode`` finds no room, the engine shrinks the batch, fails
only the sequence that cannot fit (a clear 503), and keeps serving everyone else.

Admission (`requests.prepare`: prompt plus token budget within ``n_ctx``, one KV stream of at least ``n_ctx``
cells per slot) keeps the HTTP path from ever getting there, so this test drives the engine itself with a job
whose budget was raised past its slot's 256 cells - the one input admission would refuse - and lets llama.cpp
run out of room for real: no fake, no patched return value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from adapters.errors import Unavailable
from adapters.llamacpp.engine import Engine, Job, Piece
from adapters.llamacpp.model import ContextShape, Model
from adapters.llamacpp.requests import Outcome, Plan, prepare, relay
from adapters.llamacpp.template import Prompt
from adapters.types import SamplingParams, StopReason

from .polling import wait_until

pytestmark = pytest.mark.llama

CELLS = 256  # llama.cpp's smallest KV stream; n_ctx here, so each slot has exactly this many cells
GREEDY_NO_EOS = SamplingParams(temperature=0.0, logit_bias=((2, -100.0),))
LONG_PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who " * 3
SHORT_PROMPT = "The history of the lighthouse"


@pytest.fixture
async def engine(chat_model_path: Path) -> AsyncIterator[Engine]:
    """The batching engine on two slots of 256 cells, started in this test and stopped after it."""
    shape = ContextShape(n_ctx=CELLS, parallel=2, n_batch=CELLS, n_threads=1, n_threads_batch=1)
    model = await trio.to_thread.run_sync(Model, chat_model_path, shape)
    assert model.cells_per_sequence == CELLS
    started = Engine(model, 2, CELLS)
    started.start()
    try:
        yield started
    finally:
        started.stop()
        assert await trio.to_thread.run_sync(started.join, 30.0)


def job_for(engine: Engine, text: str) -> Job:
    plan = Plan(Prompt(text=text, stop=(), add_bos=engine.model.add_bos), GREEDY_NO_EOS, prompt_param="prompt")
    return prepare(engine.model, plan, CELLS, engine.parallel)


async def test_a_sequence_that_runs_out_of_cells_fails_alone_and_the_engine_keeps_serving(engine: Engine) -> None:
    """Two slots: A (a long prompt, its budget forced past its 256 cells) and B (a short prompt, the largest
    budget admission allows) decode together; C (B's very request) waits for a slot. When A's next token finds
    no cell, the batch [A, B] fails, is split, B's half decodes and A's alone fails again: A gets a 503 saying
    the KV cache is full after streaming what fitted, B fills its slot to the last cell (finish "length") with
    exactly the text C then produces - in A's freed slot, while B still runs - so nobody else noticed. Both
    slots end idle and the decode loop is still alive."""
    overflowing = job_for(engine, LONG_PROMPT)
    overflowing.budget = 2 * CELLS
    full = job_for(engine, SHORT_PROMPT)
    again = job_for(engine, SHORT_PROMPT)
    assert len(overflowing.tokens) > len(full.tokens) + 30  # A runs out of cells while B still decodes
    assert full.budget == CELLS - len(full.tokens)
    texts: dict[str, list[str]] = {"A": [], "B": [], "C": []}
    outcomes: dict[str, Outcome] = {}
    failures: list[Unavailable] = []

    async def run(name: str, job: Job) -> None:
        async def on_piece(piece: Piece) -> None:
            texts[name].append(piece.text)

        try:
            outcomes[name] = await relay(engine, job, on_piece)
        except Unavailable as exc:
            failures.append(exc)

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "A", overflowing)
            await wait_until(lambda: engine.running == 1, polls=50_000)
            nursery.start_soon(run, "B", full)
            await wait_until(lambda: engine.running == 2, polls=50_000)
            nursery.start_soon(run, "C", again)
            await wait_until(lambda: engine.waiting == 1, polls=50_000)
    assert [(exc.http_status, exc.code) for exc in failures] == [(503, "backend_unavailable")]
    assert "KV cache is full" in str(failures[0])
    assert "A" not in outcomes and texts["A"]
    assert len(texts["A"]) <= CELLS - len(overflowing.tokens) + 1  # what fitted, and the token that did not
    b, c = outcomes["B"].choices[0], outcomes["C"].choices[0]
    assert b.stop_reason is StopReason.MAX_TOKENS and b.completion_tokens == full.budget
    assert outcomes["B"].prompt_tokens + b.completion_tokens == CELLS
    assert "".join(texts["B"]) == "".join(texts["C"]) != ""
    assert c.completion_tokens == b.completion_tokens
    assert engine.counters.kv_full == 2  # the batch of two, then A's token alone
    assert engine.error is None
    assert [slot["state"] for slot in engine.slot_status()] == ["idle", "idle"]
    assert engine.running == 0 and engine.waiting == 0
