"""Continuous batching on the real SmolLM2 model: concurrent streams decode together, one cancel frees only its
slot, n choices, log probabilities, a grammar-constrained stream among free ones, the prefix cache across turns,
KV-cell admission, seed determinism whatever else runs, and a slow reader that stalls nobody else."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from adapters.llamacpp import LlamaCppBackend
from adapters.stream import open_event_stream
from adapters.types import (
    Done,
    Event,
    MessageV2,
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    SamplingParams,
    StopReason,
    Text,
    TextBlock,
)

from ..adapters.conformance import run_to_end, split_done
from .conftest import booted
from .polling import wait_until

pytestmark = pytest.mark.llama

EOS = 2
NO_EOS = ((EOS, -100.0),)


def ask(text: str, history: tuple[MessageV2, ...] = (), **sampling: Any) -> ResolvedV2:
    return ResolvedV2("smollm2", (*history, MessageV2(Role.USER, (TextBlock(text),))), SamplingParams(**sampling))


def texts_by_choice(events: list[Event]) -> dict[int, str]:
    out: dict[int, str] = {}
    for event in events:
        if isinstance(event, Text):
            out[event.choice] = out.get(event.choice, "") + event.text
    return out


async def complete(backend: LlamaCppBackend, req: ResolvedV2) -> tuple[str, Done]:
    content, done = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    return texts_by_choice(content).get(0, ""), done


async def most_while(measure: Callable[[], int], start_jobs: Callable[[trio.Nursery], None]) -> int:
    """Run the jobs ``start_jobs`` starts to their end; return the largest ``measure()`` seen meanwhile."""
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, measure())
            await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        async with trio.open_nursery() as jobs:
            start_jobs(jobs)
        nursery.cancel_scope.cancel()
    return most


def running(backend: LlamaCppBackend) -> Callable[[], int]:
    return lambda: int(backend.status()["sequences_running"])


PROMPTS = ("Name a fruit.", "Name a colour.", "Count to five.", "Tell me about the sea.")


async def test_four_streams_decode_together(backend: LlamaCppBackend) -> None:
    """The first token of every one of four streams arrives before any of them ends, and the slots show four
    sequences decoding at once."""
    log: list[tuple[str, int]] = []

    async def stream(i: int) -> None:
        req = ask(PROMPTS[i], temperature=0.0, max_tokens=24, logit_bias=NO_EOS)
        async with open_event_stream(lambda send: backend.generate_v2(req, send)) as events:
            first = True
            async for event in events:
                if first:
                    log.append(("first", i))
                    first = False
                if isinstance(event, Done):
                    log.append(("end", i))
                    assert event.usage.completion_tokens == 24

    def decoding() -> int:
        return sum(slot["state"] == "decoding" for slot in backend.status()["slots"])

    def start(streams: trio.Nursery) -> None:
        for i in range(4):
            streams.start_soon(stream, i)

    with trio.fail_after(120):
        most_decoding = await most_while(decoding, start)
    kinds = [kind for kind, _ in log]
    assert kinds[:4] == ["first"] * 4, log
    assert most_decoding == 4


async def test_the_same_seed_gives_the_same_text_whatever_else_runs(backend: LlamaCppBackend) -> None:
    """A sampled (temperature 1) generation with a seed, run alone and then among three other streams, gives
    the same text; greedy streams run alone and together agree too."""
    seeded = ask("Write a short poem about rain.", temperature=1.0, seed=1234, max_tokens=24)
    with trio.fail_after(180):
        alone, _ = await complete(backend, seeded)
        greedy_alone = [await complete(backend, ask(p, temperature=0.0, max_tokens=16)) for p in PROMPTS[:3]]
        together: dict[int, str] = {}

        async def one(i: int, req: ResolvedV2) -> None:
            together[i], _ = await complete(backend, req)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 0, seeded)
            for i, prompt in enumerate(PROMPTS[:3], start=1):
                nursery.start_soon(one, i, ask(prompt, temperature=0.0, max_tokens=16))
    assert alone and together[0] == alone
    assert [together[i] for i in (1, 2, 3)] == [text for text, _ in greedy_alone]


async def test_cancelling_one_of_four_frees_its_slot_and_leaves_the_others_untouched(
    backend: LlamaCppBackend,
) -> None:
    """Four greedy streams; one is cancelled after three events. Its slot is idle by the time its block exits
    (at most one more token was decoded for it), and the other three finish with the very text each gives
    alone."""
    reqs = [ask(p, temperature=0.0, max_tokens=30, logit_bias=NO_EOS) for p in PROMPTS]
    results: dict[int, str] = {}
    cancelled_at: list[int] = []

    async def full(i: int) -> None:
        results[i], done = await complete(backend, reqs[i])
        assert done.usage.completion_tokens == 30

    async def cancelled() -> None:
        with trio.CancelScope() as scope:
            async with open_event_stream(lambda send: backend.generate_v2(reqs[0], send), buffer=0) as events:
                seen = 0
                async for _ in events:
                    seen += 1
                    if seen == 3:
                        cancelled_at.append(int(backend.status()["tokens_decoded"]))
                        scope.cancel()
                        await trio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        assert backend.status()["sequences_running"] <= 3  # it left the batch before its block exited

    with trio.fail_after(180):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancelled)
            for i in (1, 2, 3):
                nursery.start_soon(full, i)
        alone = [(await complete(backend, reqs[i]))[0] for i in (1, 2, 3)]
    assert cancelled_at
    assert backend.status()["cancelled"] == 1
    assert [results[i] for i in (1, 2, 3)] == alone
    assert all(slot["state"] == "idle" for slot in backend.status()["slots"])


async def test_n_choices_share_the_prompt_and_differ(backend: LlamaCppBackend) -> None:
    """n = 3 at temperature 1 with a seed: one prompt evaluation, three choices tagged 0-2, each ending, the
    usage summing their tokens; the same seed gives the same three texts again."""
    req = ask("Invent a name for a cat.", temperature=1.0, seed=7, max_tokens=12, n=3)
    with trio.fail_after(120):
        events = await run_to_end(lambda send: backend.generate_v2(req, send))
        again = await run_to_end(lambda send: backend.generate_v2(req, send))
    content, done = split_done(events)
    texts = texts_by_choice(content)
    assert sorted(texts) == [0, 1, 2] and all(texts.values())
    assert len(set(texts.values())) > 1
    assert [end.index for end in done.choices] == [0, 1, 2]
    assert done.usage.completion_tokens <= 36
    assert texts_by_choice(split_done(again)[0]) == texts


async def test_logprobs_join_to_the_content_and_rank_the_alternatives(backend: LlamaCppBackend) -> None:
    """Greedy with top_logprobs = 3: the records' tokens join to exactly the content; the sampled token is the
    most likely one; alternatives come most likely first; every logprob is <= 0."""
    req = ask("Say hello in French.", temperature=0.0, max_tokens=16, top_logprobs=3)
    with trio.fail_after(60):
        content, _ = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    pieces = [event for event in content if isinstance(event, Text)]
    records = [record for piece in pieces for record in piece.logprobs or ()]
    assert all(piece.logprobs is not None for piece in pieces)
    assert "".join(r.token for r in records) == "".join(p.text for p in pieces) != ""
    for record in records:
        assert record.logprob <= 0.0
        assert len(record.top) == 3
        assert [t.logprob for t in record.top] == sorted((t.logprob for t in record.top), reverse=True)
        assert record.logprob == pytest.approx(record.top[0].logprob)


PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


async def test_a_grammar_constrained_stream_batched_with_free_ones(backend: LlamaCppBackend) -> None:
    """A json_schema stream decoding alongside two free streams: its output validates against the schema and
    the free ones are not constrained (they begin with a letter, not JSON)."""
    schema_req = ResolvedV2(
        "smollm2",
        (MessageV2(Role.USER, (TextBlock("Describe a person as JSON."),)),),
        SamplingParams(temperature=0.0, max_tokens=60),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, "person", PERSON),
    )
    results: dict[str, str] = {}

    async def one(key: str, req: ResolvedV2) -> None:
        results[key], _ = await complete(backend, req)

    def start(jobs: trio.Nursery) -> None:
        jobs.start_soon(one, "json", schema_req)
        jobs.start_soon(one, "a", ask("Name a fruit.", temperature=0.0, max_tokens=30, logit_bias=NO_EOS))
        jobs.start_soon(one, "b", ask("Name a city.", temperature=0.0, max_tokens=30, logit_bias=NO_EOS))

    with trio.fail_after(120):
        most = await most_while(running(backend), start)
    jsonschema.validate(json.loads(results["json"]), PERSON)
    assert results["a"][:1].isalpha() and results["b"][:1].isalpha()
    assert most == 3


async def test_the_next_turn_of_a_conversation_reuses_the_cached_prefix(backend: LlamaCppBackend) -> None:
    """Turn 2 repeats turn 1 and its answer: only the new part is evaluated, and usage says how much was
    cached (at least all of turn 1's prompt); a different conversation gets nothing from the cache."""
    first = ask("My name is Ada. Remember it.", temperature=0.0, max_tokens=20)
    with trio.fail_after(120):
        answer, done1 = await complete(backend, first)
        history = (*first.messages, MessageV2(Role.ASSISTANT, (TextBlock(answer),)))
        _, done2 = await complete(backend, ask("What is my name?", history, temperature=0.0, max_tokens=10))
        _, other = await complete(backend, ask("Zebras are striped.", temperature=0.0, max_tokens=5))
    assert done1.usage.cached_tokens == 0
    assert done2.usage.cached_tokens >= done1.usage.prompt_tokens
    assert done2.usage.cached_tokens < done2.usage.prompt_tokens
    assert other.usage.cached_tokens < done1.usage.prompt_tokens - 8  # at most the shared system prompt
    assert backend.status()["cached_tokens"] >= done2.usage.cached_tokens


@pytest.fixture
async def two_small_slots(chat_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    """Two slots of 256 KV cells each."""
    async for booted_backend in booted(chat_model_path, {"n_ctx": 256, "parallel": 2}):
        yield booted_backend


async def test_requests_that_fill_their_slots_kv_cells_all_complete(two_small_slots: LlamaCppBackend) -> None:
    """Three requests that each decode until their slot's 256 cells are full (no max_tokens, end of turn banned)
    on two slots: two run, the third waits for a free slot, and every one ends with finish "length" exactly
    at the context's end - no crash, no error, no sequence started that could not fit."""
    done: list[Done] = []

    async def one(prompt: str) -> None:
        done.append((await complete(two_small_slots, ask(prompt, temperature=0.0, logit_bias=NO_EOS)))[1])

    def start(jobs: trio.Nursery) -> None:
        for prompt in PROMPTS[:3]:
            jobs.start_soon(one, prompt)

    with trio.fail_after(300):
        most = await most_while(running(two_small_slots), start)
    assert len(done) == 3
    for end in done:
        assert end.stop_reason is StopReason.MAX_TOKENS
        assert end.usage.prompt_tokens + end.usage.completion_tokens == 256
    assert most == 2
    assert two_small_slots.status()["kv_full"] == 0


async def test_a_reader_that_stops_reading_stalls_nobody_else(backend: LlamaCppBackend) -> None:
    """One stream's consumer stops after its first event: its sequence pauses (the slot says so) with a bounded
    number of tokens buffered, while another stream runs to its end."""
    stalled = ask("Tell me a very long story.", temperature=0.0, max_tokens=400, logit_bias=NO_EOS)
    with trio.fail_after(120):
        async with open_event_stream(lambda send: backend.generate_v2(stalled, send), buffer=0) as events:
            await events.__anext__()
            _, done = await complete(
                backend, ask("Name a fruit.", temperature=0.0, max_tokens=40, logit_bias=NO_EOS)
            )
            assert done.usage.completion_tokens == 40
            await wait_until(lambda: any(s["state"] == "paused" for s in backend.status()["slots"]))
            paused = next(s for s in backend.status()["slots"] if s["state"] == "paused")
            assert paused["tokens"] < 100


async def test_a_raw_prompt_is_evaluated_as_it_is(backend: LlamaCppBackend) -> None:
    """A legacy-completions prompt: no chat template around it (a handful of tokens, not the template's ~30),
    and the model continues the text itself."""
    req = ResolvedV2("smollm2", (), SamplingParams(temperature=0.0, max_tokens=6), prompt="1, 2, 3, 4,")
    assert backend.capabilities().raw_prompt
    with trio.fail_after(60):
        text, done = await complete(backend, req)
    assert done.usage.prompt_tokens < 12
    assert text.lstrip().startswith("5")
