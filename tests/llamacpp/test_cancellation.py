"""Cancellation and shutdown of real llama.cpp generations: decoding stops within one token, and a generation's
producer returns (releasing the daemon's admission slot) only after its worker thread has returned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from adapters.errors import NotReady, Unavailable
from adapters.llamacpp import LlamaCppBackend
from adapters.llamacpp.conversation import v1_messages
from adapters.llamacpp.template import Prompt
from adapters.stream import open_event_stream
from adapters.types import (
    Event,
    Message,
    MessageV2,
    Resolved,
    ResolvedV2,
    Role,
    SamplingParams,
    TextBlock,
    Token,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)

from ..adapters.conformance import run_to_end, split_done, text_of
from .conftest import booted
from .polling import wait_until

pytestmark = pytest.mark.llama

EOS = 2
#: An answer that cannot end by itself before 400 tokens (the end-of-turn token is banned).
ENDLESS = SamplingParams(temperature=0.0, max_tokens=400, logit_bias=((EOS, -100.0),))


def endless(text: str = "Tell me a very long story.") -> Resolved:
    return Resolved("smollm2", (Message(Role.USER, text),), ENDLESS)


def decoded(backend: LlamaCppBackend) -> int:
    value = backend.status()["tokens_decoded"]
    assert isinstance(value, int)
    return value


async def test_cancel_mid_stream_stops_decoding_within_one_token(backend: LlamaCppBackend) -> None:
    """The consumer reads three tokens, then is cancelled: at most one more token is decoded after that, the
    worker thread has returned by the time the stream's block exits, and the cancel is counted."""
    cancelled_before = backend.status()["cancelled"]
    received: list[Event] = []
    with trio.fail_after(60), trio.CancelScope() as scope:
        async with open_event_stream(lambda send: backend.generate(endless(), send), buffer=0) as events:
            async for event in events:
                received.append(event)
                if len(received) == 3:
                    at_cancel = decoded(backend)
                    scope.cancel()
                    await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert events.producer_done.is_set()
    assert backend.status()["sequences_running"] == 0, "the worker thread outlived the producer"
    assert decoded(backend) - at_cancel <= 1
    assert len(received) == 3 and all(isinstance(event, Token) for event in received)
    assert backend.status()["cancelled"] == cancelled_before + 1


async def test_cancel_while_the_consumer_has_stopped_reading(backend: LlamaCppBackend) -> None:
    """With room for 64 events the thread runs ahead of a consumer that stopped reading after one token.
    Cancelling then stops the thread too (it does not keep decoding into the buffer) - and only once it has
    returned does the producer finish."""
    with trio.fail_after(60), trio.CancelScope() as scope:
        async with open_event_stream(lambda send: backend.generate(endless(), send), buffer=64) as events:
            await events.__anext__()
            await wait_until(lambda: decoded(backend) >= 10)  # let the thread run ahead into the buffer
            scope.cancel()
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert events.producer_done.is_set()
    assert backend.status()["sequences_running"] == 0
    stopped_at = decoded(backend)
    assert stopped_at < 64 + 3, "decoding went on after the cancel"
    # Nothing is still running in the background: the count does not move.
    await trio.sleep(0.2)
    assert decoded(backend) == stopped_at


async def test_cancel_stops_a_generation_that_sends_nothing_until_it_ends(backend: LlamaCppBackend) -> None:
    """A forced tool call is kept whole until complete, so the worker thread emits nothing while it decodes and
    only the cancel event can stop it: once the cancel has reached the generation, at most the one token
    already being computed is decoded. (The call asked for needs at least 100 strings: hundreds of tokens.)"""
    tool = ToolSpec(
        "record",
        "Record words.",
        {
            "type": "object",
            "properties": {"words": {"type": "array", "items": {"type": "string"}, "minItems": 100}},
            "required": ["words"],
        },
    )
    req = ResolvedV2(
        "smollm2",
        (MessageV2(Role.USER, (TextBlock("Record a hundred words."),)),),
        SamplingParams(temperature=0.0, max_tokens=1000),
        tools=(tool,),
        tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
    )
    before = decoded(backend)
    scope = trio.CancelScope()
    received: list[Event] = []

    async def consume() -> None:
        with scope:
            async with open_event_stream(lambda send: backend.generate_v2(req, send)) as events:
                async for event in events:
                    received.append(event)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await wait_until(lambda: decoded(backend) >= before + 20)
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()  # the cancel has reached the generation's watcher
            at_cancel = decoded(backend)
    assert scope.cancelled_caught
    assert received == []
    assert backend.status()["sequences_running"] == 0
    assert decoded(backend) - at_cancel <= 1


async def test_cancel_before_the_first_token(backend: LlamaCppBackend) -> None:
    """Cancelled while the (long) prompt is being evaluated: no token reaches the consumer, at most the first
    token is sampled, and the thread has returned when the block exits."""
    before = decoded(backend)
    long_prompt = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)
    received: list[Event] = []
    with trio.fail_after(60), trio.CancelScope() as scope:
        async with open_event_stream(lambda send: backend.generate(endless(long_prompt), send)) as events:
            await wait_until(lambda: backend.status()["sequences_running"] == 1)  # the prompt is being evaluated
            scope.cancel()
            async for event in events:
                received.append(event)
    assert scope.cancelled_caught
    assert received == []
    assert events.producer_done.is_set()
    assert backend.status()["sequences_running"] == 0
    assert decoded(backend) - before <= 1


async def test_the_model_is_free_at_once_after_a_cancelled_generation(backend: LlamaCppBackend) -> None:
    """The next generation does not wait: it starts and completes normally right after a cancel."""
    with trio.fail_after(60):
        async with open_event_stream(lambda send: backend.generate(endless(), send), buffer=0) as events:
            await events.__anext__()
        assert backend.status()["waiting_for_slot"] == 0
        req = Resolved("smollm2", (Message(Role.USER, "Say hi."),), SamplingParams(temperature=0.0, max_tokens=8))
        content, _ = split_done(await run_to_end(lambda send: backend.generate(req, send)))
    assert text_of(content)


async def test_stop_ends_a_running_generation_and_releases_the_model(backend: LlamaCppBackend) -> None:
    """stop() during a generation: the stream ends with a 503 error after the tokens already sent, the thread
    has returned, the backend is no longer ready and refuses new work with NotReady."""
    received: list[Event] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            started = trio.Event()

            async def consume() -> None:
                async with open_event_stream(lambda send: backend.generate(endless(), send)) as events:
                    with pytest.raises(Unavailable) as raised:
                        async for event in events:
                            received.append(event)
                            started.set()
                    assert raised.value.http_status == 503

            nursery.start_soon(consume)
            await started.wait()
            await backend.stop(30)
    assert received
    assert backend.status()["state"] == "stopped"
    assert backend.status()["sequences_running"] == 0
    assert not backend.ready()
    req = Resolved("smollm2", (Message(Role.USER, "Hi"),), SamplingParams(max_tokens=2))
    with pytest.raises(NotReady):
        await run_to_end(lambda send: backend.generate(req, send))


async def test_stop_when_idle_closes_the_model_and_is_idempotent(backend: LlamaCppBackend) -> None:
    with trio.fail_after(30):
        await backend.stop(10)
        await backend.stop(10)
    assert backend.status()["state"] == "stopped"
    assert not backend.ready()


async def test_two_generations_at_once_share_the_batch(backend: LlamaCppBackend) -> None:
    """Two generations at once on one model: both run in the decode thread's batch together (never one
    waiting for the other to end) and both complete."""
    most = 0
    short = SamplingParams(temperature=0.0, max_tokens=12, logit_bias=((EOS, -100.0),))
    texts: list[str] = []

    async def one(prompt: str) -> None:
        req = Resolved("smollm2", (Message(Role.USER, prompt),), short)
        content, _ = split_done(await run_to_end(lambda send: backend.generate(req, send)))
        texts.append(text_of(content))

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, int(backend.status()["sequences_running"]))
            await trio.sleep(0.001)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            async with trio.open_nursery() as jobs:
                jobs.start_soon(one, "Name a fruit.")
                jobs.start_soon(one, "Name a colour.")
            nursery.cancel_scope.cancel()
    assert len(texts) == 2 and all(texts)
    assert most == 2


LONG_PROMPT = " ".join(f"Sentence {i}: the quick brown fox jumps over the lazy dog." for i in range(80))


@pytest.fixture
async def chunked(chat_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    """The chat backend with n_batch = 32: a long prompt is evaluated in many chunks."""
    async for booted_backend in booted(chat_model_path, {"n_batch": 32}):
        yield booted_backend


async def test_cancel_during_a_long_prompt_stops_within_one_prompt_chunk(chunked: LlamaCppBackend) -> None:
    """A prompt of ~1,400 tokens is evaluated in ~45 chunks with a cancel check between them. Cancelled after
    two chunks, at most the chunk being evaluated finishes; no token is sampled and the thread has returned
    when the stream's block exits."""
    scope = trio.CancelScope()
    received: list[Event] = []

    async def consume() -> None:
        with scope:
            async with open_event_stream(lambda send: chunked.generate(endless(LONG_PROMPT), send)) as events:
                async for event in events:
                    received.append(event)
        assert events.producer_done.is_set()
        assert chunked.status()["sequences_running"] == 0

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await wait_until(lambda: chunked.status()["prompt_batches"] >= 2)
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()  # the cancel has reached the generation's watcher
            at_cancel = chunked.status()["prompt_batches"]
    assert scope.cancelled_caught
    assert received == []
    assert chunked.status()["sequences_running"] == 0
    assert chunked.status()["prompt_batches"] - at_cancel <= 1
    assert chunked.status()["prompt_batches"] < 30, "the whole prompt was evaluated"
    assert decoded(chunked) == 0
    assert chunked.status()["cancelled"] == 1


def _greedy_reference(model_path: Path, prompt: Prompt, count: int) -> str:
    """llama-cpp-python's own ``Llama.generate`` from an empty cache: ``count`` greedy tokens, EOS banned."""
    import llama_cpp

    llama = llama_cpp.Llama(str(model_path), n_ctx=2048, n_batch=32, n_threads=1, verbose=False)

    def ban_eos(_ids: Any, scores: Any) -> Any:
        scores[EOS] -= 100.0
        return scores

    tokens = llama.tokenize(prompt.text.encode(), add_bos=prompt.add_bos, special=True)
    llama.reset()
    out: list[int] = []
    for token in llama.generate(
        tokens, temp=0.0, top_k=40, top_p=1.0, min_p=0.05, repeat_penalty=1.0,
        logits_processor=llama_cpp.LogitsProcessorList([ban_eos]),
    ):  # fmt: skip
        out.append(token)
        if len(out) == count:
            break
    text: str = llama.detokenize(out).decode("utf-8", errors="replace")
    llama.close()
    return text


async def test_a_long_prompt_evaluated_in_chunks_gives_llama_cpps_own_answer(
    chunked: LlamaCppBackend, chat_model_path: Path
) -> None:
    """The batching engine, with the prompt evaluated in chunks, changes nothing: the greedy answer equals
    llama-cpp-python's own ``Llama.generate`` over the same prompt from an empty cache (same n_batch)."""
    sampling = SamplingParams(temperature=0.0, max_tokens=12, logit_bias=((EOS, -100.0),))
    text = " ".join(f"Sentence {i}: the quick brown fox jumps over the lazy dog." for i in range(25))
    req = Resolved("smollm2", (Message(Role.USER, text + " Summarize."),), sampling)
    assert chunked._template is not None
    prompt = chunked._template.render(v1_messages(req.messages))
    with trio.fail_after(60):
        content, _ = split_done(await run_to_end(lambda send: chunked.generate(req, send)))
        assert chunked.status()["prompt_batches"] > 10
        expected = await trio.to_thread.run_sync(_greedy_reference, chat_model_path, prompt, 12)
    assert text_of(content) == expected


@pytest.fixture
async def one_chunk(chat_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    """The chat backend with n_batch = 2048: a ~1,400-token prompt is one chunk, one llama_decode of seconds."""
    async for booted_backend in booted(chat_model_path, {"n_batch": 2048}):
        yield booted_backend


async def test_a_cancel_abandons_the_step_only_its_request_waits_for(one_chunk: LlamaCppBackend) -> None:
    """Cancelled while its whole prompt is being evaluated in one llama_decode, with nothing else running: the
    decode is abandoned mid-way (``aborted_steps``), not finished (no prompt chunk done, no token sampled), and
    the slot is idle with nothing cached - the cells it had filled are removed again, so the next request runs
    normally and finds no stale prefix."""
    scope = trio.CancelScope()

    async def consume() -> None:
        with scope:
            async with open_event_stream(lambda send: one_chunk.generate(endless(LONG_PROMPT), send)) as events:
                async for _ in events:
                    raise AssertionError("a token came out of a cancelled prompt")

    def evaluating() -> bool:
        return any(slot["state"] == "prefill" for slot in one_chunk.status()["slots"])

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await wait_until(evaluating)
            scope.cancel()
    status = one_chunk.status()
    assert scope.cancelled_caught
    assert (status["aborted_steps"], status["prompt_batches"], status["tokens_decoded"]) == (1, 0, 0)
    assert status["slots"][0] == {"slot": 0, "state": "idle", "cached": 0}
    req = Resolved("smollm2", (Message(Role.USER, "Say hi."),), SamplingParams(temperature=0.0, max_tokens=4))
    with trio.fail_after(60):
        content, done = split_done(await run_to_end(lambda send: one_chunk.generate(req, send)))
    assert text_of(content)
    assert done.usage.cached_tokens == 0
