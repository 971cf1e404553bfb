"""The backend conformance suite: the contract of `adapters.backend.Backend`, as checks any backend must pass.

Each check is ``async def check_x(backend, profile)``: ``backend`` is booted (the test module's fixture boots
it and stops it afterwards), ``profile`` says what to send and how exactly the answers can be predicted. A
backend's test module runs all that apply::

    PROFILE = ConformanceProfile(model="smollm2", prompts=(...), make_unbooted=...)

    @pytest.mark.parametrize("check", checks_for(PROFILE))
    async def test_conformance(check, my_backend):
        await check(my_backend, PROFILE)

What is checked: the event stream's shape (content events, then exactly one `Done`, last); honest usage;
``max_tokens`` 1..3; stop sequences (deterministic backends); that cancelling the consumer, or leaving the
stream early, stops the producer before the consumer's block exits and leaves the backend usable; that
concurrent generations do not interfere; and that capabilities match behaviour (v2, tools, json_schema, embed,
raw_prompt, choices, logprobs).
Every check runs under a ``trio.fail_after(profile.timeout_s)`` guard, so a backend that hangs fails instead.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import trio

from adapters import (
    Done,
    EmbedResolved,
    Event,
    InvalidRequest,
    Message,
    MessageV2,
    NotReady,
    Resolved,
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    SamplingParams,
    StopReason,
    Text,
    TextBlock,
    Thinking,
    Token,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    ToolUse,
    Unsupported,
)
from adapters.backend import Backend
from adapters.stream import open_event_stream

Check = Callable[[Backend, "ConformanceProfile"], Awaitable[None]]

SYSTEM_PROMPT = "You are a test fixture."

#: `ConformanceProfile.prompts` for a backend that echoes its prompt (the mock, and what answers as it): words
#: to count exactly, one with runs of spaces, and enough of them for the concurrency check.
ECHO_PROMPTS = (
    "please repeat these seven words back now",
    "a different prompt  with  odd spacing",
    "third prompt for the concurrency check",
)

#: The tool offered by the tool-use check; its arguments must validate against this schema.
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather in a city.",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)

#: The schema the json_schema check asks for; the answer must parse and validate against it.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


def status_counter(key: str) -> Callable[[Backend], int]:
    """A profile hook reading one integer from ``backend.status()`` (e.g. "active", "cancelled")."""

    def read(backend: Backend) -> int:
        value = backend.status()[key]
        assert isinstance(value, int), f"status()[{key!r}] is {value!r}, not an int"
        return value

    return read


@dataclass(frozen=True)
class ConformanceProfile:
    """What to send a backend and how precisely its answers can be predicted."""

    #: Model id put in every request.
    model: str
    #: User messages, at least two, each of which the backend answers with at least 4 tokens (so that
    #: ``max_tokens`` 1..3 truncates). The first is the default prompt.
    prompts: tuple[str, ...]
    #: Builds a fresh, unbooted backend like the fixture's, for the lifetime (NotReady) check; None leaves that
    #: check out of `checks_for`.
    make_unbooted: Callable[[], Backend] | None = None
    #: Base sampling for every request; checks override ``max_tokens`` and ``stop``.
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_tokens=64))
    #: ``max_tokens`` for tool calls and JSON answers, which must not be truncated to be valid.
    structured_max_tokens: int = 256
    #: Usage counts exactly one completion token per content event (and ``max_tokens=n`` gives n events).
    exact_usage: bool = False
    #: Expected ``prompt_tokens`` for the texts of the request's messages, when the backend's count is known.
    prompt_tokens: Callable[[Sequence[str]], int] | None = None
    #: The exact answer text to a prompt, when it is known (the mock's echo).
    expected_reply: Callable[[str], str] | None = None
    #: The same request always gets the same answer (temperature 0 and a fixed seed, or a mock).
    deterministic: bool = False
    #: How many generations of this backend are running now.
    active_generations: Callable[[Backend], int] = field(default_factory=lambda: status_counter("active"))
    #: How many generations ended by trio.Cancelled so far, when the backend reports it.
    cancelled_generations: Callable[[Backend], int] | None = None
    #: Embedding vectors have unit L2 norm.
    unit_embeddings: bool = True
    #: Guard on each check, in seconds (virtual seconds under an autojump clock).
    timeout_s: float = 60.0


# --- helpers --------------------------------------------------------------------------------------------


def request(profile: ConformanceProfile, prompt: str | None = None, **sampling: Any) -> Resolved:
    """A v1 request: the system prompt, then ``prompt`` (default: the profile's first) as the user."""
    text = profile.prompts[0] if prompt is None else prompt
    return Resolved(
        model=profile.model,
        messages=(Message(Role.SYSTEM, SYSTEM_PROMPT), Message(Role.USER, text)),
        sampling=dataclasses.replace(profile.sampling, **sampling),
    )


def request_v2(profile: ConformanceProfile, prompt: str | None = None, **fields: Any) -> ResolvedV2:
    """The v2 form of `request`, with extra `ResolvedV2` fields (tools, tool_choice, response_format...)."""
    v1 = request(profile, prompt)
    messages = tuple(MessageV2(m.role, (TextBlock(m.content),)) for m in v1.messages)
    return ResolvedV2(model=v1.model, messages=messages, sampling=v1.sampling, **fields)


async def run_to_end(produce: Callable[[trio.MemorySendChannel[Event]], Awaitable[None]]) -> list[Event]:
    """Run a producer to its return and list every event it sent, including any sent after a `Done`."""
    send, receive = trio.open_memory_channel[Event](math.inf)
    with send, receive:
        await produce(send)
        return [receive.receive_nowait() for _ in range(receive.statistics().current_buffer_used)]


def split_done(events: Sequence[Event]) -> tuple[list[Event], Done]:
    """The content events and the `Done` of a stream, asserting exactly one `Done`, last."""
    assert events, "the producer returned without sending anything"
    dones = [i for i, event in enumerate(events) if isinstance(event, Done)]
    assert dones == [len(events) - 1], f"expected exactly one Done, last; got Done at {dones} of {len(events)}"
    done = events[-1]
    assert isinstance(done, Done)
    return list(events[:-1]), done


def text_of(events: Sequence[Event]) -> str:
    """The answer text of content events (v1 tokens or v2 text; reasoning and tool calls excluded)."""
    return "".join(event.text for event in events if isinstance(event, Token | Text))


async def generate_text(backend: Backend, req: Resolved) -> str:
    """Run a v1 generation to its end, check its shape, and return its text."""
    content, _ = split_done(await run_to_end(lambda send: backend.generate(req, send)))
    return text_of(content)


def check_usage(
    profile: ConformanceProfile, req: Resolved | ResolvedV2, content: Sequence[Event], done: Done
) -> None:
    """Usage is honest: counts are non-negative, match exactly where the profile says they can."""
    usage = done.usage
    assert usage.prompt_tokens > 0, f"prompt_tokens {usage.prompt_tokens} for a non-empty prompt"
    assert usage.completion_tokens >= 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if content:
        assert usage.completion_tokens >= 1, "content was sent but completion_tokens is 0"
    if profile.exact_usage:
        assert usage.completion_tokens == len(content), f"{usage.completion_tokens=} for {len(content)} events"
    if profile.prompt_tokens is not None:
        texts = [m.content if isinstance(m, Message) else m.text() for m in req.messages]
        assert usage.prompt_tokens == profile.prompt_tokens(texts)


_ALL: list[Check] = []


def _check(func: Check) -> Check:
    """Register a check and guard it with the profile's timeout."""

    @functools.wraps(func)
    async def guarded(backend: Backend, profile: ConformanceProfile) -> None:
        with trio.fail_after(profile.timeout_s):
            await func(backend, profile)

    _ALL.append(guarded)
    return guarded


# --- the checks -----------------------------------------------------------------------------------------


@_check
async def check_v1_stream(backend: Backend, profile: ConformanceProfile) -> None:
    """v1: `Token` events with text, then exactly one `Done`, last; honest usage; the expected text."""
    req = request(profile)
    content, done = split_done(await run_to_end(lambda send: backend.generate(req, send)))
    assert content, "no tokens for a prompt the profile says is answered"
    assert all(isinstance(event, Token) and event.text for event in content), content
    assert done.stop_reason in (StopReason.END, StopReason.MAX_TOKENS, StopReason.STOP_SEQUENCE)
    check_usage(profile, req, content, done)
    if profile.expected_reply is not None:
        assert text_of(content) == profile.expected_reply(profile.prompts[0])


@_check
async def check_v1_stream_through_event_stream(backend: Backend, profile: ConformanceProfile) -> None:
    """The same generation consumed the daemon's way (an owned stream) ends with `Done` and its producer."""
    req = request(profile)
    async with open_event_stream(lambda send: backend.generate(req, send)) as events:
        received = [event async for event in events]
    assert isinstance(received[-1], Done)
    assert events.producer_done.is_set()
    assert profile.active_generations(backend) == 0


@_check
async def check_max_tokens(backend: Backend, profile: ConformanceProfile) -> None:
    """``max_tokens`` = 1, 2, 3 stops the answer there with `StopReason.MAX_TOKENS`."""
    for limit in (1, 2, 3):
        req = request(profile, max_tokens=limit)
        content, done = split_done(await run_to_end(lambda send, req=req: backend.generate(req, send)))
        assert done.stop_reason is StopReason.MAX_TOKENS, (limit, done)
        assert 1 <= len(content) <= limit, (limit, content)
        assert 1 <= done.usage.completion_tokens <= limit, (limit, done.usage)
        if profile.exact_usage:
            assert len(content) == limit == done.usage.completion_tokens


@_check
async def check_stop_sequence(backend: Backend, profile: ConformanceProfile) -> None:
    """A stop sequence taken from the answer itself ends the answer just before it, with STOP_SEQUENCE.

    Needs a deterministic backend (the stop sequence is chosen from a first, unrestricted answer).
    """
    full = await generate_text(backend, request(profile))
    words = full.split()
    assert len(words) >= 3, f"answer {full!r} is too short to pick a stop sequence from"
    stop = words[2]
    expected = full[: full.index(stop)]
    req = request(profile, stop=(stop,))
    content, done = split_done(await run_to_end(lambda send: backend.generate(req, send)))
    assert done.stop_reason is StopReason.STOP_SEQUENCE, done
    assert text_of(content) == expected
    check_usage(profile, req, content, done)


@_check
async def check_cancel_mid_stream(backend: Backend, profile: ConformanceProfile) -> None:
    """Cancelling the consumer after the first token stops the producer before the consumer's block exits.

    The channel is unbuffered, so the producer cannot have finished on its own when the cancel comes: it still
    owes at least `Done`. Afterwards no generation is active, the producer task is done, the generation is
    counted as cancelled (where the backend reports it), and the backend still answers.
    """
    count_cancelled = profile.cancelled_generations or (lambda backend: 0)
    cancelled_before = count_cancelled(backend)
    req = request(profile)
    received: list[Event] = []
    with trio.CancelScope() as scope:
        async with open_event_stream(lambda send: backend.generate(req, send), buffer=0) as events:
            async for event in events:
                received.append(event)
                scope.cancel()
                await trio.lowlevel.checkpoint()  # the cancel lands here, inside the stream's block
    assert scope.cancelled_caught
    assert len(received) == 1 and isinstance(received[0], Token), received
    assert events.producer_done.is_set(), "the producer outlived the consumer's block"
    assert profile.active_generations(backend) == 0, "a generation is still running after the cancel"
    if profile.cancelled_generations is not None:
        assert count_cancelled(backend) == cancelled_before + 1, "the generation did not end by trio.Cancelled"
    assert await generate_text(backend, request(profile))


@_check
async def check_consumer_leaves_early(backend: Backend, profile: ConformanceProfile) -> None:
    """A consumer that stops reading after the first token (``break``) stops the producer on leaving."""
    req = request(profile)
    async with open_event_stream(lambda send: backend.generate(req, send), buffer=0) as events:
        async for event in events:
            assert isinstance(event, Token)
            break
    assert events.producer_done.is_set()
    assert profile.active_generations(backend) == 0
    assert await generate_text(backend, request(profile))


@_check
async def check_concurrent_generations(backend: Backend, profile: ConformanceProfile) -> None:
    """Several generations at once on one backend each get a well-formed answer to their own prompt.

    Every prompt runs twice at once. Deterministic backends must give each the answer it gets alone.
    """
    alone = {prompt: await generate_text(backend, request(profile, prompt)) for prompt in profile.prompts}
    jobs = [prompt for prompt in profile.prompts for _ in range(2)]
    answers: list[str | None] = [None] * len(jobs)

    async def one(index: int) -> None:
        answers[index] = await generate_text(backend, request(profile, jobs[index]))

    async with trio.open_nursery() as nursery:
        for index in range(len(jobs)):
            nursery.start_soon(one, index)
    assert all(answers), answers
    if profile.deterministic:
        assert answers == [alone[prompt] for prompt in jobs]
    if profile.expected_reply is not None:
        assert answers == [profile.expected_reply(prompt) for prompt in jobs]
    assert profile.active_generations(backend) == 0


@_check
async def check_embed_matches_capability(backend: Backend, profile: ConformanceProfile) -> None:
    """No ``embed`` capability: `embed` raises `Unsupported`. With it: one vector per input, in order,
    deterministic, of the advertised length, unit length where the profile says so."""
    caps = backend.capabilities()
    inputs = ("alpha", "beta gamma", "alpha")
    if not caps.embed:
        with pytest.raises(Unsupported):
            await backend.embed(EmbedResolved(model=profile.model, inputs=inputs))
        return
    result = await backend.embed(EmbedResolved(model=profile.model, inputs=inputs))
    vectors = result.vectors
    assert len(vectors) == len(inputs)
    assert len({len(v) for v in vectors}) == 1, "vectors of different lengths"
    if caps.embed_dimensions is not None:
        assert len(vectors[0]) == caps.embed_dimensions
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-5), "the same input gave different vectors"
    assert vectors[0] != pytest.approx(vectors[1], abs=1e-3), "different inputs gave the same vector"
    if profile.unit_embeddings:
        for vector in vectors:
            assert math.sqrt(math.fsum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-4)
    again = await backend.embed(EmbedResolved(model=profile.model, inputs=inputs[::-1]))
    for got, want in zip(again.vectors, vectors[::-1], strict=True):
        assert got == pytest.approx(want, abs=1e-5), "vectors depend on position or call, not on input"


@_check
async def check_v2_text(backend: Backend, profile: ConformanceProfile) -> None:
    """No v2 capability: `generate_v2` raises `InvalidRequest`. With it, a plain-text v2 request streams
    `Text` (and maybe `Thinking`) events, then exactly one `Done`, like v1."""
    req = request_v2(profile)
    if not backend.capabilities().v2:
        with pytest.raises(InvalidRequest):
            await run_to_end(lambda send: backend.generate_v2(req, send))
        return
    content, done = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    assert content
    assert all(isinstance(event, Text | Thinking) for event in content), content
    assert text_of(content), "no answer text"
    check_usage(profile, req, content, done)
    if profile.expected_reply is not None:
        assert text_of(content) == profile.expected_reply(profile.prompts[0])


@_check
async def check_v2_tool_choice(backend: Backend, profile: ConformanceProfile) -> None:
    """With the ``tools`` capability, a forced tool (``required`` or by name) is called with JSON arguments
    valid against its schema, and the stream ends with TOOL_USE. Without it, tools are refused."""
    caps = backend.capabilities()
    for choice in (ToolChoice(ToolChoiceMode.REQUIRED), ToolChoice(ToolChoiceMode.NAMED, WEATHER_TOOL.name)):
        req = request_v2(
            profile,
            "What is the weather in Paris? Use the tool.",
            tools=(WEATHER_TOOL,),
            tool_choice=choice,
        )
        req = dataclasses.replace(
            req, sampling=dataclasses.replace(req.sampling, max_tokens=profile.structured_max_tokens)
        )
        if not (caps.v2 and caps.tools):
            with pytest.raises(InvalidRequest):
                await run_to_end(lambda send, req=req: backend.generate_v2(req, send))
            continue
        content, done = split_done(await run_to_end(lambda send, req=req: backend.generate_v2(req, send)))
        calls = [event for event in content if isinstance(event, ToolUse)]
        assert calls, f"no tool call for tool_choice {choice}: {content}"
        assert done.stop_reason is StopReason.TOOL_USE
        for call in calls:
            assert call.name == WEATHER_TOOL.name
            assert call.id
            jsonschema.validate(json.loads(call.arguments), dict(WEATHER_TOOL.parameters))
        assert len({call.id for call in calls}) == len(calls), "tool call ids are not unique"


@_check
async def check_v2_json_schema(backend: Backend, profile: ConformanceProfile) -> None:
    """With the ``json_schema`` capability, the answer to a json_schema response format parses and validates
    against the schema. Without it, the response format is refused."""
    caps = backend.capabilities()
    req = request_v2(
        profile,
        "Answer in JSON.",
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="answer", schema=ANSWER_SCHEMA),
    )
    req = dataclasses.replace(
        req, sampling=dataclasses.replace(req.sampling, max_tokens=profile.structured_max_tokens)
    )
    if not (caps.v2 and caps.json_schema):
        with pytest.raises(InvalidRequest):
            await run_to_end(lambda send: backend.generate_v2(req, send))
        return
    content, done = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    assert done.stop_reason is StopReason.END, done
    jsonschema.validate(json.loads(text_of(content)), ANSWER_SCHEMA)


@_check
async def check_raw_prompt_matches_capability(backend: Backend, profile: ConformanceProfile) -> None:
    """With the ``raw_prompt`` capability, a raw-text request (`ResolvedV2.prompt` set, no messages: legacy
    completions) streams `Text` events, then exactly one `Done` whose usage counts the prompt. Without it, the
    request is refused (`InvalidRequest`), never answered as if it were a chat."""
    caps = backend.capabilities()
    req = ResolvedV2(model=profile.model, messages=(), sampling=profile.sampling, prompt=profile.prompts[0])
    if not (caps.v2 and caps.raw_prompt):
        with pytest.raises(InvalidRequest):
            await run_to_end(lambda send: backend.generate_v2(req, send))
        return
    content, done = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    assert all(isinstance(event, Text) for event in content), content
    assert done.usage.prompt_tokens > 0, "a raw prompt's tokens are not counted"
    if profile.exact_usage:
        assert done.usage.completion_tokens == len(content)
    if profile.expected_reply is not None:
        assert text_of(content) == profile.expected_reply(profile.prompts[0])


@_check
async def check_choices_and_logprobs_match_capability(backend: Backend, profile: ConformanceProfile) -> None:
    """With the ``choices`` capability, ``n = 2`` gives content events of choices 0 and 1 only and one `Done`
    listing both ends in index order; with ``logprobs``, every text event carries records whose tokens join to
    the text of its choice, each with at most ``top_logprobs`` alternatives. (A backend without them is refused
    before it runs, by `adapters.dispatch`, so there is nothing to check then.)"""
    caps = backend.capabilities()
    if not caps.v2 or not (caps.choices or caps.logprobs):
        return
    sampling = dataclasses.replace(
        profile.sampling, n=2 if caps.choices else 1, top_logprobs=2 if caps.logprobs else None
    )
    req = dataclasses.replace(request_v2(profile), sampling=sampling)
    content, done = split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))
    texts: dict[int, list[str]] = {}
    tokens: dict[int, list[str]] = {}
    for event in content:
        if isinstance(event, Thinking):
            continue
        assert isinstance(event, Text), event
        texts.setdefault(event.choice, []).append(event.text)
        if caps.logprobs:
            assert event.logprobs is not None, f"a text event without log probabilities: {event}"
            assert all(len(record.top) <= 2 for record in event.logprobs), event.logprobs
            tokens.setdefault(event.choice, []).extend(record.token for record in event.logprobs)
    assert set(texts) <= set(range(sampling.n)), f"content of choices {sorted(texts)} for n = {sampling.n}"
    if caps.choices:
        assert [end.index for end in done.choices] == [0, 1], f"Done.choices is {done.choices}"
    if caps.logprobs:
        assert {i: "".join(t) for i, t in tokens.items()} == {i: "".join(t) for i, t in texts.items()}


@_check
async def check_not_ready_outside_lifetime(backend: Backend, profile: ConformanceProfile) -> None:
    """A fresh backend is not ready and refuses to generate (`NotReady`) until booted; after `stop` begins it
    is not ready again and refuses again. (``backend`` is unused: this check builds its own.)"""
    assert profile.make_unbooted is not None, "this profile has no make_unbooted: run checks_for(profile)"
    fresh = profile.make_unbooted()
    req = request(profile)
    assert not fresh.ready()
    with pytest.raises(NotReady):
        await run_to_end(lambda send: fresh.generate(req, send))
    await fresh.boot()
    assert fresh.ready()
    assert await generate_text(fresh, req)
    await fresh.stop(profile.timeout_s / 4)
    assert not fresh.ready()
    with pytest.raises(NotReady):
        await run_to_end(lambda send: fresh.generate(req, send))


#: Every check, as pytest params with readable ids.
CHECKS = [pytest.param(check, id=check.__name__) for check in _ALL]

#: Checks that only make sense for a deterministic backend.
_NEEDS_DETERMINISM = {check_stop_sequence}


def checks_for(profile: ConformanceProfile) -> list[Any]:
    """The checks that apply to ``profile``, as pytest params (for ``@pytest.mark.parametrize("check", ...)``)."""
    return [
        pytest.param(check, id=check.__name__)
        for check in _ALL
        if (profile.deterministic or check not in _NEEDS_DETERMINISM)
        and (profile.make_unbooted is not None or check is not check_not_ready_outside_lifetime)
    ]
