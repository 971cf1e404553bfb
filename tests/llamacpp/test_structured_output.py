"""Grammar-enforced output on the real model: json_object / json_schema answers that always validate, tool
calls forced by tool_choice, auto and none - and schemas too costly or not enforceable rejected with a 400."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import trio

from adapters.errors import Internal, InvalidRequest
from adapters.llamacpp import LlamaCppBackend
from adapters.llamacpp.grammar import validate_in_llama
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
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUse,
    ToolUseBlock,
)

from ..adapters.conformance import run_to_end, split_done, text_of
from .conftest import booted

pytestmark = pytest.mark.llama

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z][a-z]{1,12}$"},
        "age": {"type": "integer"},
        "role": {"enum": ["pilot", "cook", "doctor"]},
        "retired": {"type": "boolean"},
        "skills": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3},
        "home": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 30}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role", "retired", "skills", "home"],
    "additionalProperties": False,
}

WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
TIME = ToolSpec(
    "get_time",
    "Current time in a time zone.",
    {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 40}}, "required": ["zone"]},
)


def ask(text: str, *, max_tokens: int = 120, **fields: Any) -> ResolvedV2:
    sampling = fields.pop(
        "sampling", SamplingParams(temperature=0.0, max_tokens=max_tokens, frequency_penalty=1.0)
    )
    return ResolvedV2("smollm2", (MessageV2(Role.USER, (TextBlock(text),)),), sampling, **fields)


async def events_of(backend: LlamaCppBackend, req: ResolvedV2) -> tuple[list[Event], Done]:
    with trio.fail_after(60):
        return split_done(await run_to_end(lambda send: backend.generate_v2(req, send)))


async def rejected(backend: LlamaCppBackend, req: ResolvedV2) -> InvalidRequest:
    with trio.fail_after(60), pytest.raises(InvalidRequest) as raised:
        await run_to_end(lambda send: backend.generate_v2(req, send))
    assert raised.value.http_status == 400
    return raised.value


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_json_schema_answers_parse_and_validate_even_when_sampled(
    backend: LlamaCppBackend, seed: int
) -> None:
    req = ask(
        "Describe a person as JSON.",
        sampling=SamplingParams(temperature=0.9, max_tokens=200, seed=seed, frequency_penalty=0.5),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, "person", PERSON, strict=True),
    )
    content, done = await events_of(backend, req)
    assert done.stop_reason is StopReason.END, text_of(content)
    assert all(isinstance(event, Text) for event in content)
    jsonschema.validate(json.loads(text_of(content)), PERSON)


BOUNDED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rating": {"type": "integer", "minimum": 3, "maximum": 7},
        "year": {"type": "integer", "exclusiveMinimum": 1999, "exclusiveMaximum": 2031},
        "offset": {"type": "integer", "minimum": -5, "maximum": -2},
        "share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    },
    "required": ["rating", "year", "offset", "share"],
    "additionalProperties": False,
}


#: Optional fields written as type lists, each with keywords for one of its types (as zod or a hand-written
#: Anthropic ``input_schema`` writes them): enforced as the anyOf of the types, each keeping its keywords.
OPTIONAL: dict[str, Any] = {
    "type": "object",
    "properties": {
        "nick": {"type": ["string", "null"], "maxLength": 6},
        "rating": {"type": ["integer", "null"], "minimum": 3, "maximum": 7},
        "tags": {"type": ["array", "null"], "items": {"enum": ["a", "b"]}, "maxItems": 2},
    },
    "required": ["nick", "rating", "tags"],
    "additionalProperties": False,
}


#: Schemas whose keywords llama-cpp-python's converter would drop, which trinfer enforces itself: the prompt, the
#: schema and the answer's token budget.
ENFORCED: dict[str, tuple[str, dict[str, Any], int]] = {
    # What pydantic's Field(ge=..., le=..., gt=..., lt=...) sends.
    "numeric bounds": (
        "Rate the film Alien from 1 to 10 as JSON; the year it came out; an offset; a share.",
        BOUNDED,
        120,
    ),
    "type lists": ("Give a nickname, a rating and tags as JSON.", OPTIONAL, 80),
}


@pytest.mark.parametrize(
    ("case", "seed"), [("numeric bounds", 4), ("numeric bounds", 5), ("type lists", 6), ("type lists", 7)]
)
async def test_what_the_converter_drops_is_enforced_in_every_sampled_answer(
    backend: LlamaCppBackend, case: str, seed: int
) -> None:
    prompt, schema, max_tokens = ENFORCED[case]
    req = ask(
        prompt,
        sampling=SamplingParams(temperature=1.0, max_tokens=max_tokens, seed=seed),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, "answer", schema, strict=True),
    )
    content, done = await events_of(backend, req)
    assert done.stop_reason is StopReason.END, text_of(content)
    jsonschema.validate(json.loads(text_of(content)), schema)


async def test_json_object_answers_are_a_json_object(backend: LlamaCppBackend) -> None:
    # A prompt whose greedy answer closes: SmolLM2-135M answers "List two fruits as JSON." with an object
    # that never ends (an unterminated string), which the grammar allows.
    req = ask(
        "Give Tom's name and age (30) as a JSON object.",
        response_format=ResponseFormat(ResponseFormatKind.JSON_OBJECT),
    )
    content, done = await events_of(backend, req)
    assert done.stop_reason is StopReason.END
    assert isinstance(json.loads(text_of(content)), dict)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice(ToolChoiceMode.REQUIRED), {"get_weather", "get_time"}),
        (ToolChoice(ToolChoiceMode.NAMED, "get_time"), {"get_time"}),
        (ToolChoice(ToolChoiceMode.NAMED, "get_weather"), {"get_weather"}),
    ],
    ids=["required", "named-time", "named-weather"],
)
async def test_forced_tool_choice_gives_one_valid_call_of_an_offered_tool(
    backend: LlamaCppBackend, choice: ToolChoice, expected: set[str]
) -> None:
    req = ask("What is the weather in Paris?", tools=(WEATHER, TIME), tool_choice=choice)
    content, done = await events_of(backend, req)
    assert done.stop_reason is StopReason.TOOL_USE
    assert len(content) == 1 and isinstance(content[0], ToolUse), content
    call = content[0]
    assert call.name in expected
    assert call.id.startswith("call_")
    tool = WEATHER if call.name == WEATHER.name else TIME
    jsonschema.validate(json.loads(call.arguments), dict(tool.parameters))
    assert done.usage.completion_tokens > 0


async def test_auto_answers_in_text_when_the_model_does_not_start_a_call(backend: LlamaCppBackend) -> None:
    req = ask("Write one sentence about the sea.", max_tokens=30, tools=(WEATHER,))
    content, _ = await events_of(backend, req)
    assert content and all(isinstance(event, Text) for event in content)
    assert not text_of(content).lstrip().startswith("{")


async def test_auto_turns_an_answer_that_starts_with_a_brace_into_a_valid_call(backend: LlamaCppBackend) -> None:
    """The first visible character decides: here ``{`` is pushed (logit_bias) and the model is then held to a
    valid call of the offered tool by the call grammar - the bias alone would write braces forever."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(backend.options.model_path), vocab_only=True, verbose=False)
    try:
        (brace,) = vocab.tokenize(b"{", add_bos=False)
    finally:
        vocab.close()
    only_enums = ToolSpec(
        "set_city",
        "Choose a city.",
        {"type": "object", "properties": {"city": {"enum": ["Paris", "Rome"]}}, "required": ["city"]},
    )
    sampling = SamplingParams(temperature=0.0, max_tokens=60, logit_bias=((brace, 100.0),))
    decoded_before = backend.status()["tokens_decoded"]
    content, done = await events_of(backend, ask("Pick a city.", sampling=sampling, tools=(only_enums,)))
    assert done.stop_reason is StopReason.TOOL_USE, content
    # Usage counts every token computed, the discarded "{" included (only the end-of-turn token is not).
    assert done.usage.completion_tokens == backend.status()["tokens_decoded"] - decoded_before - 1
    assert len(content) == 1 and isinstance(content[0], ToolUse)
    assert content[0].name == "set_city"
    assert json.loads(content[0].arguments) in ({"city": "Paris"}, {"city": "Rome"})


async def test_auto_with_a_json_response_format_is_a_valid_call_or_a_valid_answer(
    backend: LlamaCppBackend,
) -> None:
    answer_schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 60}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    req = ask(
        "What is the weather in Paris?",
        tools=(WEATHER,),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, "a", answer_schema),
    )
    content, done = await events_of(backend, req)
    assert len(content) == 1
    if isinstance(content[0], ToolUse):
        assert done.stop_reason is StopReason.TOOL_USE
        jsonschema.validate(json.loads(content[0].arguments), dict(WEATHER.parameters))
    else:
        assert done.stop_reason is StopReason.END
        jsonschema.validate(json.loads(text_of(content)), answer_schema)


async def test_tool_choice_none_neither_offers_nor_calls_tools(backend: LlamaCppBackend) -> None:
    sampling = SamplingParams(temperature=0.0, max_tokens=4)
    _, with_tools = await events_of(backend, ask("Weather in Paris?", sampling=sampling, tools=(WEATHER,)))
    req = ask(
        "Weather in Paris?", sampling=sampling, tools=(WEATHER,), tool_choice=ToolChoice(ToolChoiceMode.NONE)
    )
    content, done = await events_of(backend, req)
    assert all(isinstance(event, Text) for event in content)
    _, no_tools = await events_of(backend, ask("Weather in Paris?", sampling=sampling))
    assert done.usage.prompt_tokens == no_tools.usage.prompt_tokens < with_tools.usage.prompt_tokens


async def test_a_conversation_with_a_tool_call_and_its_result_is_answered(backend: LlamaCppBackend) -> None:
    messages = (
        MessageV2(Role.USER, (TextBlock("What is the weather in Paris?"),)),
        MessageV2(Role.ASSISTANT, (ToolUseBlock("call_1", "get_weather", '{"city": "Paris", "unit": "c"}'),)),
        MessageV2(Role.TOOL, (ToolResultBlock("call_1", "21 degrees and sunny"),)),
    )
    req = ResolvedV2("smollm2", messages, SamplingParams(temperature=0.0, max_tokens=30), tools=(WEATHER,))
    content, _ = await events_of(backend, req)
    assert text_of(content) or any(isinstance(event, ToolUse) for event in content)


# --- what is refused, before the model is asked anything ----------------------------------------------


def schema_request(schema: dict[str, Any]) -> ResolvedV2:
    return ask("x", response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, "s", schema))


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "string", "maxLength": 100_000}, "repetition"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 5000}, "repetition"),
        ({"type": "string", "pattern": "^a{3000}$"}, "repeats"),
        ({"type": "string", "pattern": "abc"}, "anchored"),
        ({"type": "string", "pattern": "^[^a]+$"}, "negated"),
        ({"type": "string", "pattern": "^[ -~]+$"}, "quote, a backslash"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "oneOf"),
        ({"$ref": "https://example.com/schema.json"}, "local"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "missing"),
        ({"enum": [f"value-{i:05d}" for i in range(4000)]}, "bytes"),
        ({"type": "bogus"}, "grammar"),
    ],
    ids=["maxLength", "maxItems", "pattern-repeat", "unanchored", "negated-class", "unsafe-range", "multipleOf",
         "uniqueItems", "oneOf", "remote-ref", "dangling-ref", "too-big", "bad-type"],
)  # fmt: skip
async def test_schemas_that_cannot_be_enforced_cheaply_are_a_400(
    backend: LlamaCppBackend, schema: dict[str, Any], fragment: str
) -> None:
    error = await rejected(backend, schema_request(schema))
    assert error.param == "response_format.json_schema.schema"
    assert fragment in error.message
    assert backend.status()["generations"] == 0, "the model was asked anyway"


async def test_a_schema_nested_too_deeply_is_a_400(backend: LlamaCppBackend) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    error = await rejected(backend, schema_request(schema))
    assert "nests deeper" in error.message


async def test_a_tool_whose_parameters_cannot_be_enforced_is_a_400_naming_the_tool(
    backend: LlamaCppBackend,
) -> None:
    bad = ToolSpec("bad", None, {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 3}}})
    req = ask("x", tools=(WEATHER, bad), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    error = await rejected(backend, req)
    assert error.param == "tools[1].function.parameters"


async def test_the_grammar_size_limit_is_configurable(chat_model_path: Any) -> None:
    async for tight in booted(chat_model_path, {"max_grammar_bytes": 300}):
        error = await rejected(tight, schema_request(PERSON))
        assert "limit is 300" in error.message


async def test_llama_cpp_itself_judges_a_grammar_last(backend: LlamaCppBackend) -> None:
    with pytest.raises(InvalidRequest):
        await trio.to_thread.run_sync(validate_in_llama, backend._model.vocab, "root ::= undefined-rule", "tools")
    await trio.to_thread.run_sync(validate_in_llama, backend._model.vocab, 'root ::= "ok"', "tools")


async def test_tool_parameters_of_a_type_other_than_object_are_a_400_naming_the_tool(
    backend: LlamaCppBackend,
) -> None:
    text = ToolSpec("echo", None, {"type": "string"})
    req = ask("Say hi.", tools=(WEATHER, text), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    error = await rejected(backend, req)
    assert error.param == "tools[1].function.parameters"
    assert "type 'object'" in error.message


async def test_a_forced_call_that_does_not_parse_is_not_the_backends_fault(backend: LlamaCppBackend) -> None:
    """Parameters an anyOf of strings: the grammar makes the arguments a string, which is no call. The client
    gets a 500, but one that does not count against the circuit breaker (the model is fine)."""
    text = ToolSpec("echo", None, {"anyOf": [{"type": "string", "maxLength": 10}]})
    req = ask("Say hi.", tools=(text,), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    with trio.fail_after(60), pytest.raises(Internal) as raised:
        await run_to_end(lambda send: backend.generate_v2(req, send))
    assert raised.value.http_status == 500
    assert raised.value.backend_fault is False
    assert raised.value.code == "model_output_unusable"


async def test_a_forced_call_of_a_tool_without_parameters_has_empty_arguments(backend: LlamaCppBackend) -> None:
    """No ``parameters`` means no arguments: the grammar allows only ``{}``, so the model cannot invent any."""
    weather_now = ToolSpec("weather_now", "The weather where the user is.", {})
    req = ask("What is the weather in Paris, in celsius?", tools=(weather_now,), tool_choice=ToolChoice(
        ToolChoiceMode.REQUIRED))  # fmt: skip
    content, done = await events_of(backend, req)
    assert done.stop_reason is StopReason.TOOL_USE
    assert len(content) == 1 and isinstance(content[0], ToolUse)
    assert (content[0].name, content[0].arguments) == ("weather_now", "{}")


async def test_a_forced_call_cut_short_by_max_tokens_ends_with_length_and_no_content(
    backend: LlamaCppBackend,
) -> None:
    """The partial call's JSON is not an answer: no Text, no ToolUse, just Done(max_tokens)."""
    req = ask("What is the weather in Paris?", max_tokens=3, tools=(WEATHER,), tool_choice=ToolChoice(
        ToolChoiceMode.REQUIRED))  # fmt: skip
    content, done = await events_of(backend, req)
    assert content == []
    assert done.stop_reason is StopReason.MAX_TOKENS
    assert done.usage.completion_tokens == 3
