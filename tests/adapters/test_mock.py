"""The mock backend: every option, every failure mode, tool calls, JSON output, embeddings, config errors."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

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
    Token,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUse,
    Unavailable,
    Unsupported,
    Usage,
)
from adapters.backend import BackendConfigError
from adapters.mock import CHUNK_CHARS, MockBackend, count_words, echo_tokens
from adapters.registry import backend_class
from adapters.stream import open_event_stream

from .conformance import run_to_end


async def booted(options: Mapping[str, Any] | None = None) -> MockBackend:
    backend = MockBackend.from_options(options or {})
    await backend.boot()
    return backend


def chat(*texts: str, roles: Sequence[Role] | None = None, **sampling: Any) -> Resolved:
    """A v1 request; the texts are user messages unless ``roles`` says otherwise."""
    roles = roles or [Role.USER] * len(texts)
    return Resolved(
        model="mock-echo",
        messages=tuple(Message(role, text) for role, text in zip(roles, texts, strict=True)),
        sampling=SamplingParams(**sampling),
    )


def chat_v2(text: str, **fields: Any) -> ResolvedV2:
    return ResolvedV2(model="mock-echo", messages=(MessageV2(Role.USER, (TextBlock(text),)),), **fields)


async def generate(backend: MockBackend, req: Resolved) -> list[Event]:
    return await run_to_end(lambda send: backend.generate(req, send))


async def generate_v2(backend: MockBackend, req: ResolvedV2) -> list[Event]:
    return await run_to_end(lambda send: backend.generate_v2(req, send))


def tokens(events: Sequence[Event]) -> list[str]:
    return [event.text for event in events if isinstance(event, Token | Text)]


# --- replies, tokenisation, usage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello  big world", ["hello  ", "big ", "world"]),
        ("  leading and trailing \n", ["  leading ", "and ", "trailing \n"]),
        ("one", ["one"]),
        ("   ", ["   "]),
        ("", []),
    ],
)
async def test_echo_streams_one_word_per_token_keeping_whitespace(text: str, expected: list[str]) -> None:
    backend = await booted()
    events = await generate(backend, chat(text))
    assert events == [*(Token(t) for t in expected), Done(StopReason.END, Usage(len(text.split()), len(expected)))]
    assert "".join(tokens(events)) == text


async def test_echo_answers_the_last_user_message_and_counts_every_message() -> None:
    backend = await booted()
    req = chat(
        "be brief",
        "first question",
        "an answer",
        "second question here",
        roles=[Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.USER],
    )
    events = await generate(backend, req)
    assert tokens(events) == ["second ", "question ", "here"]
    assert events[-1] == Done(StopReason.END, Usage(prompt_tokens=2 + 2 + 2 + 3, completion_tokens=3))


async def test_echo_without_a_user_message_answers_nothing() -> None:
    backend = await booted()
    events = await generate(backend, chat("only a system prompt", roles=[Role.SYSTEM]))
    assert events == [Done(StopReason.END, Usage(prompt_tokens=4, completion_tokens=0))]


async def test_fixed_reply_ignores_the_prompt() -> None:
    backend = await booted({"reply": ["The", " answer", " is", " 42."]})
    events = await generate(backend, chat("anything at all"))
    assert tokens(events) == ["The", " answer", " is", " 42."]
    assert events[-1] == Done(StopReason.END, Usage(prompt_tokens=3, completion_tokens=4))


async def test_v2_prompt_counts_text_blocks_of_every_message() -> None:
    backend = await booted()
    req = ResolvedV2(
        model="mock-echo",
        messages=(
            MessageV2(Role.SYSTEM, (TextBlock("be brief"),)),
            MessageV2(Role.TOOL, (ToolResultBlock("call_1", "sunny"),)),
            MessageV2(Role.USER, (TextBlock("so "), TextBlock("what now"))),
        ),
    )
    events = await generate_v2(backend, req)
    assert events == [Text("so "), Text("what "), Text("now"), Done(StopReason.END, Usage(5, 3))]


# --- max_tokens and stop sequences ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "expected", "reason"),
    [
        (0, [], StopReason.MAX_TOKENS),
        (1, ["one "], StopReason.MAX_TOKENS),
        (2, ["one ", "two "], StopReason.MAX_TOKENS),
        (3, ["one ", "two ", "three"], StopReason.END),  # the answer fits: it ended by itself
        (10, ["one ", "two ", "three"], StopReason.END),
    ],
)
async def test_max_tokens(max_tokens: int, expected: list[str], reason: StopReason) -> None:
    backend = await booted()
    events = await generate(backend, chat("one two three", max_tokens=max_tokens))
    assert tokens(events) == expected
    assert events[-1] == Done(reason, Usage(prompt_tokens=3, completion_tokens=len(expected)))


@pytest.mark.parametrize(
    ("stop", "expected", "matched"),
    [
        (("big",), ["hello "], "big"),
        (("ig",), ["hello ", "b"], "ig"),  # cut inside a token
        (("o b",), ["hell"], "o b"),  # spanning two tokens
        (("world", "big"), ["hello "], "big"),  # the earliest match wins, whatever its position in the list
        (("hello",), [], "hello"),
        (("", "ld"), ["hello ", "big ", "wor"], "ld"),  # an empty stop string matches nothing
    ],
)
async def test_stop_sequences_end_the_text_before_the_match(
    stop: tuple[str, ...], expected: list[str], matched: str
) -> None:
    backend = await booted()
    events = await generate(backend, chat("hello big world", stop=stop))
    assert tokens(events) == expected
    usage = Usage(prompt_tokens=3, completion_tokens=len(expected))
    assert events[-1] == Done(StopReason.STOP_SEQUENCE, usage, stop_sequence=matched)


async def test_stop_sequence_absent_or_after_max_tokens() -> None:
    backend = await booted()
    absent = await generate(backend, chat("hello big world", stop=("nowhere",)))
    assert absent[-1] == Done(StopReason.END, Usage(3, 3))
    later = await generate(backend, chat("hello big world", stop=("world",), max_tokens=1))
    assert later == [Token("hello "), Done(StopReason.MAX_TOKENS, Usage(3, 1))]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "bb", " ", "  ", "\n", "x\t", "é "]), max_size=200),
    st.integers(min_value=1, max_value=40),
)
def test_long_prompts_split_a_chunk_at_a_time_into_the_same_tokens(pieces: list[str], repeat: int) -> None:
    # Long enough to span several chunks, with whitespace runs and words at every chunk edge.
    text = "".join(pieces) * (CHUNK_CHARS // max(1, len("".join(pieces))) * repeat // 10 + 1)
    assert echo_tokens(text) == re.findall(r"\s*\S+\s*|\s+", text)
    assert "".join(echo_tokens(text)) == text
    assert count_words([text, text]) == 2 * len(text.split())


async def test_max_tokens_on_a_long_prompt_counts_every_word_but_sends_only_its_tokens() -> None:
    backend = await booted()
    text = " ".join(f"w{i}" for i in range(3 * CHUNK_CHARS // 4))
    events = await generate(backend, chat(text, max_tokens=2))
    assert events == [Token("w0 "), Token("w1 "), Done(StopReason.MAX_TOKENS, Usage(3 * CHUNK_CHARS // 4, 2))]


# --- pacing and boot ---------------------------------------------------------------------------------------


async def test_token_delay_paces_each_token(autojump_clock: trio.testing.MockClock) -> None:
    backend = await booted({"token_delay_ms": 250})
    start = trio.current_time()
    arrivals: list[float] = []
    with trio.fail_after(10):
        async with open_event_stream(lambda send: backend.generate(chat("a b c"), send)) as events:
            async for _ in events:
                arrivals.append(trio.current_time() - start)
    assert arrivals == pytest.approx([0.25, 0.5, 0.75, 0.75])  # three tokens, then Done at once


async def test_boot_delay_keeps_the_backend_not_ready(autojump_clock: trio.testing.MockClock) -> None:
    backend = MockBackend.from_options({"boot_delay_ms": 2000})
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(backend.boot)
            await trio.sleep(1.9)
            assert not backend.ready()
            with pytest.raises(NotReady, match="has not finished booting"):
                await generate(backend, chat("hi"))
        assert backend.ready()
        assert trio.current_time() == pytest.approx(2.0)
        assert tokens(await generate(backend, chat("hi"))) == ["hi"]


async def test_stop_makes_the_backend_not_ready() -> None:
    backend = await booted({"embed_dim": 4})
    await backend.stop(1.0)
    assert not backend.ready()
    with pytest.raises(NotReady, match="is stopping") as caught:
        await generate(backend, chat("hi"))
    assert (caught.value.http_status, caught.value.code) == (503, "backend_unavailable")
    with pytest.raises(NotReady):
        await generate_v2(backend, chat_v2("hi"))
    with pytest.raises(NotReady):
        await backend.embed(EmbedResolved(model="mock-echo", inputs=("hi",)))
    assert backend.status()["started"] == 0, "a refused request is not a generation"


# --- failure modes -----------------------------------------------------------------------------------------


async def test_fail_pre_stream_raises_before_any_event() -> None:
    backend = await booted({"fail": "pre-stream"})
    send, receive = trio.open_memory_channel[Event](10)
    with pytest.raises(Unavailable) as caught:
        await backend.generate(chat("hello there"), send)
    assert receive.statistics().current_buffer_used == 0
    assert caught.value.http_status == 502
    with pytest.raises(Unavailable):
        await generate_v2(backend, chat_v2("hello there"))
    assert backend.status() == {"started": 2, "completed": 0, "cancelled": 0, "failed": 2, "active": 0}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"fail": "mid-stream"}, ["a ", "b ", "c "]),  # default: after 3 tokens
        ({"fail": "mid-stream", "fail_after_tokens": 1}, ["a "]),
        ({"fail": "mid-stream", "fail_after_tokens": 9}, ["a ", "b ", "c ", "d"]),  # short answer: before Done
    ],
)
async def test_fail_mid_stream_after_some_tokens_without_done(
    options: dict[str, Any], expected: list[str]
) -> None:
    backend = await booted(options)
    received: list[Event] = []
    with trio.fail_after(10), pytest.raises(Unavailable, match="mid-stream"):
        async with open_event_stream(lambda send: backend.generate(chat("a b c d"), send)) as events:
            async for event in events:
                received.append(event)
    assert tokens(received) == expected
    assert not any(isinstance(event, Done) for event in received)
    assert backend.status()["failed"] == 1


async def test_fail_mid_stream_after_a_tool_call() -> None:
    backend = await booted({"fail": "mid-stream"})
    req = chat_v2("x", tools=(ToolSpec("f"),), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    send, receive = trio.open_memory_channel[Event](10)
    with pytest.raises(Unavailable):
        await backend.generate_v2(req, send)
    assert [type(receive.receive_nowait())] == [ToolUse]


async def test_fail_boot() -> None:
    backend = MockBackend.from_options({"fail": "boot"})
    with pytest.raises(Unavailable, match="boot"):
        await backend.boot()
    assert not backend.ready()
    with pytest.raises(NotReady):
        await generate(backend, chat("hi"))


# --- counters ------------------------------------------------------------------------------------------


async def test_status_counts_active_completed_and_cancelled_generations() -> None:
    backend = await booted()
    assert backend.status() == {"started": 0, "completed": 0, "cancelled": 0, "failed": 0, "active": 0}
    await generate(backend, chat("done"))
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with open_event_stream(lambda send: backend.generate(chat("x y z"), send), buffer=0) as events:
                await events.__anext__()
                assert backend.status()["active"] == 1  # blocked handing over its second token
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
    assert backend.status() == {"started": 2, "completed": 1, "cancelled": 1, "failed": 0, "active": 0}


# --- v2: tools and response formats --------------------------------------------------------------------

SCHEMAS: list[dict[str, Any]] = [
    {},
    {"type": "object", "properties": {"q": {"type": "string"}}},  # nothing required
    {
        "type": "object",
        "properties": {
            "s": {"type": "string", "minLength": 0},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "string"}},
            "o": {"type": "object", "properties": {"deep": {"type": "integer"}}, "required": ["deep"]},
            "untyped_object": {"properties": {"k": {"type": "boolean"}}, "required": ["k"]},
            "anything": {},
            "nullable": {"type": ["null", "string"]},
            "null_only": {"type": "null"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "version": {"const": 2},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
        },
        "required": [
            "s",
            "i",
            "n",
            "b",
            "a",
            "o",
            "untyped_object",
            "anything",
            "nullable",
            "null_only",
            "unit",
            "version",
            "either",
            "one",
        ],
        "additionalProperties": False,
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_required_tool_call_arguments_validate_against_the_tool_schema(schema: dict[str, Any]) -> None:
    backend = await booted()
    tool = ToolSpec("lookup", parameters=schema)
    req = chat_v2("call it", tools=(tool, ToolSpec("other")), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    events = await generate_v2(backend, req)
    assert len(events) == 2
    call, done = events
    assert isinstance(call, ToolUse) and call.name == "lookup"
    arguments = json.loads(call.arguments)
    assert isinstance(arguments, dict)
    jsonschema.validate(arguments, schema)
    assert done == Done(StopReason.TOOL_USE, Usage(prompt_tokens=2, completion_tokens=1))


async def test_tool_call_fills_each_type_with_its_simplest_value() -> None:
    backend = await booted()
    req = chat_v2(
        "x", tools=(ToolSpec("f", parameters=SCHEMAS[2]),), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED)
    )
    call = (await generate_v2(backend, req))[0]
    assert isinstance(call, ToolUse)
    assert json.loads(call.arguments) == {
        "s": "",
        "i": 0,
        "n": 0,
        "b": False,
        "a": [],
        "o": {"deep": 0},
        "untyped_object": {"k": False},
        "anything": None,
        "nullable": "",
        "null_only": None,
        "unit": "celsius",
        "version": 2,
        "either": 0,
        "one": False,
    }


async def test_named_tool_choice_calls_that_tool_with_unique_ids() -> None:
    backend = await booted()
    tools = (ToolSpec("first"), ToolSpec("second", parameters={"required": ["x"]}))
    req = chat_v2("x", tools=tools, tool_choice=ToolChoice(ToolChoiceMode.NAMED, "second"))
    first = (await generate_v2(backend, req))[0]
    again = (await generate_v2(backend, req))[0]
    assert isinstance(first, ToolUse) and isinstance(again, ToolUse)
    assert (first.name, json.loads(first.arguments)) == ("second", {"x": None})
    assert first.id != again.id


@pytest.mark.parametrize(
    "choice",
    [ToolChoice(ToolChoiceMode.NAMED, "missing"), ToolChoice(ToolChoiceMode.REQUIRED)],
    ids=["named-unknown", "required-without-tools"],
)
async def test_forced_tool_that_is_not_offered_is_an_invalid_request(choice: ToolChoice) -> None:
    backend = await booted()
    tools = (ToolSpec("present"),) if choice.mode is ToolChoiceMode.NAMED else ()
    with pytest.raises(InvalidRequest) as caught:
        await generate_v2(backend, chat_v2("x", tools=tools, tool_choice=choice))
    assert (caught.value.param, caught.value.http_status) == ("tool_choice", 400)


@pytest.mark.parametrize("mode", [ToolChoiceMode.AUTO, ToolChoiceMode.NONE])
async def test_tools_not_forced_get_a_text_answer(mode: ToolChoiceMode) -> None:
    backend = await booted()
    events = await generate_v2(backend, chat_v2("just talk", tools=(ToolSpec("f"),), tool_choice=ToolChoice(mode)))
    assert events == [Text("just "), Text("talk"), Done(StopReason.END, Usage(2, 2))]


@pytest.mark.parametrize(
    ("options", "expected"), [({}, "say \u201chi\u201d"), ({"reply": ["fixed", " words"]}, "fixed words")]
)
async def test_json_object_answer_parses(options: dict[str, Any], expected: str) -> None:
    backend = await booted(options)
    fmt = ResponseFormat(ResponseFormatKind.JSON_OBJECT)
    events = await generate_v2(backend, chat_v2("say \u201chi\u201d", response_format=fmt))
    assert json.loads("".join(tokens(events))) == {"echo": expected}
    assert isinstance(events[-1], Done) and events[-1].usage.completion_tokens == len(events) - 1


@pytest.mark.parametrize("schema", [SCHEMAS[2], None])
async def test_json_schema_answer_validates(schema: dict[str, Any] | None) -> None:
    backend = await booted()
    fmt = ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="out", schema=schema)
    events = await generate_v2(backend, chat_v2("anything", response_format=fmt))
    answer = json.loads("".join(tokens(events)))
    jsonschema.validate(answer, schema or {"type": "object"})
    assert events[-1] == Done(StopReason.END, Usage(1, len(events) - 1))


# --- embeddings ----------------------------------------------------------------------------------------


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


async def test_embeddings_are_deterministic_unit_vectors() -> None:
    one, other = await booted({"embed_dim": 32}), await booted({"embed_dim": 32})
    req = EmbedResolved(model="mock-embed", inputs=("the cat", "a dog", "the cat"))
    first, second = await one.embed(req), await other.embed(req)
    assert first == second  # across instances, not just calls: derived from the text alone
    assert first.prompt_tokens == 6
    a, b, c = first.vectors
    assert len(a) == 32 and a == c and a != b
    assert all(norm(v) == pytest.approx(1.0) for v in first.vectors)
    assert (await one.embed(EmbedResolved(model="mock-embed", inputs=("a dog",)))).vectors == (b,)


async def test_embedding_dimensions_truncate_and_renormalise() -> None:
    backend = await booted({"embed_dim": 16})
    full = (await backend.embed(EmbedResolved(model="m", inputs=("text",)))).vectors[0]
    short = (await backend.embed(EmbedResolved(model="m", inputs=("text",), dimensions=5))).vectors[0]
    assert len(short) == 5
    assert norm(short) == pytest.approx(1.0)
    assert short == pytest.approx([x / norm(full[:5]) for x in full[:5]])
    same = (await backend.embed(EmbedResolved(model="m", inputs=("text",), dimensions=16))).vectors[0]
    assert same == full


@pytest.mark.parametrize("dimensions", [17, 0, -1])
async def test_embedding_dimensions_out_of_range_are_invalid(dimensions: int) -> None:
    backend = await booted({"embed_dim": 16})
    with pytest.raises(InvalidRequest, match="between 1 and 16") as caught:
        await backend.embed(EmbedResolved(model="m", inputs=("text",), dimensions=dimensions))
    assert (caught.value.param, caught.value.http_status) == ("dimensions", 400)


async def test_embeddings_unsupported_without_embed_dim() -> None:
    backend = await booted()
    assert not backend.capabilities().embed
    with pytest.raises(Unsupported) as caught:
        await backend.embed(EmbedResolved(model="mock-echo", inputs=("x",)))
    assert (caught.value.http_status, caught.value.code, caught.value.param) == (400, "unsupported_model", "model")


async def test_token_id_inputs_are_refused_the_mock_has_no_vocabulary() -> None:
    backend = await booted({"embed_dim": 8})
    assert not backend.capabilities().embed_token_ids
    with pytest.raises(Unsupported) as caught:
        await backend.embed(EmbedResolved(model="m", inputs=(), token_ids=((1, 2),)))
    error = caught.value
    assert (error.http_status, error.code, error.param) == (400, "unsupported_parameter", "input")


# --- capabilities, registry and config -----------------------------------------------------------------


def test_capabilities_follow_the_options() -> None:
    plain = MockBackend.from_options({}).capabilities()
    embedding = MockBackend.from_options({"embed_dim": 8}).capabilities()
    assert (plain.v2, plain.tools, plain.json_schema, plain.embed, plain.embed_dimensions) == (
        True,
        True,
        True,
        False,
        None,
    )
    assert (embedding.embed, embedding.embed_dimensions) == (True, 8)


def test_registry_maps_mock_to_this_class() -> None:
    assert backend_class("mock") is MockBackend
    assert MockBackend.name == "mock"


def test_full_option_set_is_accepted() -> None:
    backend = MockBackend.from_options(
        {
            "reply": ("a", "b"),
            "token_delay_ms": 1.5,
            "boot_delay_ms": 0,
            "fail": "mid-stream",
            "fail_after_tokens": 2,
            "embed_dim": 3,
        }
    )
    assert (backend.options.reply, backend.options.token_delay_s, backend.options.fail_after_tokens) == (
        ("a", "b"),
        0.0015,
        2,
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"reply": "shout"}, "reply"),
        ({"reply": 7}, "reply"),
        ({"reply": ["ok", 3]}, "reply"),
        ({"token_delay_ms": -1}, "token_delay_ms"),
        ({"token_delay_ms": "10"}, "token_delay_ms"),
        ({"token_delay_ms": True}, "token_delay_ms"),
        ({"token_delay_ms": math.inf}, "token_delay_ms"),
        ({"boot_delay_ms": math.nan}, "boot_delay_ms"),
        ({"fail": "sometimes"}, "fail"),
        ({"fail": None}, "fail"),
        ({"fail_after_tokens": 0}, "fail_after_tokens"),
        ({"fail_after_tokens": 2.0}, "fail_after_tokens"),
        ({"fail_after_tokens": False}, "fail_after_tokens"),
        ({"embed_dim": -1}, "embed_dim"),
        ({"embed_dim": "8"}, "embed_dim"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(options: dict[str, Any], key: str) -> None:
    with pytest.raises(BackendConfigError, match=f"'{key}'"):
        MockBackend.from_options(options)
