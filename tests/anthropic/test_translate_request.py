"""OpenAI-shaped engine requests -> what the fake Messages API actually received from the real SDK."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from adapters.anthropic_backend import AnthropicBackend
from adapters.errors import InvalidRequest
from adapters.types import (
    ContentBlock,
    ImageBlock,
    Message,
    MessageV2,
    RedactedThinkingBlock,
    Resolved,
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    SamplingParams,
    TextBlock,
    ThinkingBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)

from .conftest import UPSTREAM_MODEL, collect, collect_failure
from .fake_upstream import FakeMessagesAPI, text_reply

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def user(text: str) -> MessageV2:
    return MessageV2(Role.USER, (TextBlock(text),))


def system(text: str) -> MessageV2:
    return MessageV2(Role.SYSTEM, (TextBlock(text),))


def assistant(*blocks: ContentBlock) -> MessageV2:
    return MessageV2(Role.ASSISTANT, blocks)


async def upstream_body(
    backend: AnthropicBackend, fake: FakeMessagesAPI, req: ResolvedV2 | Resolved
) -> dict[str, Any]:
    fake.reply(text_reply(["ok"]))
    await collect(backend, req)
    return fake.requests[-1].body


async def test_plain_chat_is_streamed_with_mapped_model_and_default_max_tokens(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    body = await upstream_body(backend, fake, ResolvedV2(model="claude", messages=(user("Hello"),)))
    assert body == {
        "model": UPSTREAM_MODEL,
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
    }
    request = fake.requests[-1]
    assert request.path == "/v1/messages"
    assert "anthropic-version" in request.headers


async def test_model_ids_not_in_the_map_are_sent_unchanged(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    body = await upstream_body(backend, fake, ResolvedV2(model="claude-sonnet-5", messages=(user("x"),)))
    assert body["model"] == "claude-sonnet-5"


async def test_system_messages_are_joined_into_the_top_level_system_field(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(system("You are terse."), user("Hi"), system("Answer in French."), user("Bye")),
    )
    body = await upstream_body(backend, fake, req)
    assert body["system"] == "You are terse.\n\nAnswer in French."
    assert all(turn["role"] in ("user", "assistant") for turn in body["messages"])


async def test_turns_alternate_and_consecutive_same_role_turns_are_merged(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(user("one"), user("two"), assistant(TextBlock("three")), user("four"), assistant(TextBlock(""))),
    )
    body = await upstream_body(backend, fake, req)
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"}]},
        {"role": "user", "content": [{"type": "text", "text": "four"}]},
    ]


async def test_v1_generate_sends_the_same_shape(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    req = Resolved(
        model="claude",
        messages=(Message(Role.SYSTEM, "Be brief."), Message(Role.USER, "Hi"), Message(Role.ASSISTANT, "Hello")),
        sampling=SamplingParams(max_tokens=12),
    )
    body = await upstream_body(backend, fake, req)
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 12
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant"]


async def test_images_become_base64_image_blocks(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(MessageV2(Role.USER, (TextBlock("What is this?"), ImageBlock("image/png", PNG, detail="low"))),),
    )
    body = await upstream_body(backend, fake, req)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
        },
    ]


async def test_unsupported_image_type_is_refused_before_upstream_naming_the_field(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(
        model="claude", messages=(MessageV2(Role.USER, (TextBlock("x"), ImageBlock("image/bmp", b"BM"))),)
    )
    events, error = await collect_failure(backend, req)
    assert events == []
    assert isinstance(error, InvalidRequest)
    assert error.http_status == 400
    assert error.param == "messages[0].content[1]"
    assert fake.requests == []


async def test_tools_and_tool_result_round_trip(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(
            user("Weather in Paris and Oslo?"),
            assistant(
                TextBlock("Checking."),
                ToolUseBlock("toolu_1", "get_weather", '{"city": "Paris"}'),
                ToolUseBlock("toolu_2", "get_weather", '{"city": "Oslo"}'),
            ),
            MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", "18C, sunny"),)),
            MessageV2(Role.TOOL, (ToolResultBlock("toolu_2", "city not found", is_error=True),)),
            user("Thanks, summarise."),
        ),
        tools=(WEATHER,),
    )
    body = await upstream_body(backend, fake, req)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "city not found", "is_error": True},
                {"type": "text", "text": "Thanks, summarise."},
            ],
        },
    ]


async def test_tool_without_parameters_gets_an_object_schema_and_strict_is_passed(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(model="claude", messages=(user("x"),), tools=(ToolSpec(name="now", strict=True),))
    body = await upstream_body(backend, fake, req)
    assert body["tools"] == [{"name": "now", "input_schema": {"type": "object"}, "strict": True}]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), True, {"type": "auto"}),
        (ToolChoice(ToolChoiceMode.NONE), True, {"type": "none"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), True, {"type": "any"}),
        (ToolChoice(ToolChoiceMode.NAMED, "get_weather"), True, {"type": "tool", "name": "get_weather"}),
        (ToolChoice(ToolChoiceMode.AUTO), False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice(ToolChoiceMode.REQUIRED), False, {"type": "any", "disable_parallel_tool_use": True}),
        (ToolChoice(ToolChoiceMode.NONE), False, {"type": "none"}),
    ],
)
async def test_tool_choice_mapping(
    backend: AnthropicBackend, fake: FakeMessagesAPI, choice: ToolChoice, parallel: bool, expected: dict[str, Any]
) -> None:
    req = ResolvedV2(
        model="claude", messages=(user("x"),), tools=(WEATHER,), tool_choice=choice, parallel_tool_calls=parallel
    )
    body = await upstream_body(backend, fake, req)
    assert body["tool_choice"] == expected


async def test_sampling_parameters_and_stop_sequences(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    sampling = SamplingParams(
        temperature=0.3, top_p=0.9, top_k=40, max_tokens=99, stop=("END", "\n\nUser:"), seed=7
    )
    body = await upstream_body(backend, fake, ResolvedV2(model="claude", messages=(user("x"),), sampling=sampling))
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["top_k"] == 40
    assert body["max_tokens"] == 99
    assert body["stop_sequences"] == ["END", "\n\nUser:"]
    assert "seed" not in body


@pytest.mark.parametrize(
    ("sampling", "param"),
    [
        (SamplingParams(presence_penalty=0.5), "presence_penalty"),
        (SamplingParams(frequency_penalty=-1.0), "frequency_penalty"),
        (SamplingParams(logit_bias=((50256, -100.0),)), "logit_bias"),
        (SamplingParams(min_p=0.1), "min_p"),
    ],
)
async def test_parameters_without_an_anthropic_equivalent_are_refused(
    backend: AnthropicBackend, fake: FakeMessagesAPI, sampling: SamplingParams, param: str
) -> None:
    _, error = await collect_failure(backend, ResolvedV2(model="claude", messages=(user("x"),), sampling=sampling))
    assert isinstance(error, InvalidRequest)
    assert (error.http_status, error.code, error.param) == (400, "unsupported_parameter", param)
    assert fake.requests == []


async def test_neutral_penalties_are_accepted(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    sampling = SamplingParams(presence_penalty=0.0, frequency_penalty=0.0)
    body = await upstream_body(backend, fake, ResolvedV2(model="claude", messages=(user("x"),), sampling=sampling))
    assert "presence_penalty" not in body
    assert "frequency_penalty" not in body


async def test_json_schema_response_format_uses_structured_outputs(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
    }
    req = ResolvedV2(
        model="claude",
        messages=(user("Describe Ada"),),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="person", schema=schema, strict=True),
    )
    body = await upstream_body(backend, fake, req)
    sent = body["output_config"]["format"]
    assert sent["type"] == "json_schema"
    assert sent["schema"]["additionalProperties"] is False
    assert sent["schema"]["required"] == ["name", "age"]
    assert sent["schema"]["properties"]["name"]["type"] == "string"
    # A keyword the API does not accept is kept as a hint in the description rather than sent as is.
    assert "minimum" not in sent["schema"]["properties"]["age"]
    assert "minimum: 0" in sent["schema"]["properties"]["age"]["description"]
    assert "tools" not in body


async def test_a_list_of_types_is_sent_as_any_of_with_each_types_keywords(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    # The SDK's transform asserts on a list of types; as anyOf it takes them, each with its own keywords.
    schema = {
        "type": "object",
        "properties": {"nick": {"type": ["string", "null"], "maxLength": 8, "description": "optional"}},
        "required": ["nick"],
    }
    req = ResolvedV2(
        model="claude",
        messages=(user("Describe Ada"),),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="person", schema=schema, strict=True),
    )
    body = await upstream_body(backend, fake, req)
    nick = body["output_config"]["format"]["schema"]["properties"]["nick"]
    assert nick == {
        "anyOf": [{"type": "string", "description": "{maxLength: 8}"}, {"type": "null"}],
        "description": "optional",
    }
    assert schema["properties"]["nick"]["type"] == ["string", "null"]  # the client's schema is left as it was


async def test_json_object_response_format_adds_a_system_instruction(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(system("You are helpful."), user("List two colours")),
        response_format=ResponseFormat(ResponseFormatKind.JSON_OBJECT),
    )
    body = await upstream_body(backend, fake, req)
    assert body["system"].startswith("You are helpful.\n\n")
    assert "single JSON object" in body["system"]


@pytest.mark.parametrize(
    "schema",
    [
        {"description": "no type"},
        {"type": "object", "properties": {"a": True}},  # the SDK's transform raises TypeError on a boolean schema
        {"type": "array", "items": [{"type": "string"}]},
    ],
    ids=["no type", "boolean subschema", "tuple items"],
)
async def test_unusable_json_schema_is_a_400_naming_the_field(
    backend: AnthropicBackend, fake: FakeMessagesAPI, schema: dict[str, object]
) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(user("x"),),
        response_format=ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="bad", schema=schema),
    )
    _, error = await collect_failure(backend, req)
    assert isinstance(error, InvalidRequest)
    assert error.param == "response_format.json_schema.schema"
    assert fake.requests == []


async def test_tool_arguments_that_are_not_an_object_are_refused(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(user("x"), assistant(ToolUseBlock("toolu_1", "get_weather", json.dumps([1, 2]))), user("y")),
        tools=(WEATHER,),
    )
    _, error = await collect_failure(backend, req)
    assert isinstance(error, InvalidRequest)
    assert error.param == "messages[1].content[0]"


async def test_key_is_sent_as_a_credential_header(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    await upstream_body(backend, fake, ResolvedV2(model="claude", messages=(user("x"),)))
    headers = fake.requests[-1].headers
    assert headers.get("authorization") == f"Bearer {fake.api_key}" or headers.get("x-api-key") == fake.api_key


@pytest.mark.parametrize(
    ("req", "param"),
    [
        (ResolvedV2(model="claude", messages=(system("only a system prompt"),)), "messages"),
        (
            ResolvedV2(model="claude", messages=(user("x"),), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED)),
            "tool_choice",
        ),
        (
            ResolvedV2(
                model="claude",
                messages=(user("x"), MessageV2(Role.ASSISTANT, (ImageBlock("image/png", PNG),))),
            ),
            "messages[1].content[0]",
        ),
        (
            ResolvedV2(
                model="claude",
                messages=(user("x"), assistant(ToolUseBlock("toolu_1", "get_weather", "{not json"))),
                tools=(WEATHER,),
            ),
            "messages[1].content[0]",
        ),
    ],
    ids=["no-turns", "tool-choice-without-tools", "image-from-assistant", "arguments-not-json"],
)
async def test_requests_anthropic_cannot_take_are_refused_before_upstream(
    backend: AnthropicBackend, fake: FakeMessagesAPI, req: ResolvedV2, param: str
) -> None:
    events, error = await collect_failure(backend, req)
    assert events == []
    assert isinstance(error, InvalidRequest)
    assert (error.http_status, error.param) == (400, param)
    assert fake.requests == []


async def test_empty_tool_result_and_empty_arguments(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    req = ResolvedV2(
        model="claude",
        messages=(
            user("x"),
            assistant(ToolUseBlock("toolu_1", "now", "")),
            MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", ""),)),
        ),
        tools=(ToolSpec(name="now"),),
    )
    body = await upstream_body(backend, fake, req)
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]


async def test_reasoning_blocks_go_back_upstream_unchanged_and_in_place(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    """A tool loop with thinking on: the turn's thinking (signature byte for byte, even an empty text) and its
    redacted reasoning stay before its tool_use, where the API requires them."""
    signature = "EqQBCkYIBxgCKkDx+/=="
    call = ToolUseBlock("toolu_1", "get_weather", '{"city":"Paris"}')
    req = ResolvedV2(
        model="claude",
        messages=(
            user("weather?"),
            assistant(ThinkingBlock("", signature), RedactedThinkingBlock("b3BhcXVl"), call),
            MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", "sunny"),)),
        ),
        tools=(WEATHER,),
    )
    body = await upstream_body(backend, fake, req)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "", "signature": signature},
            {"type": "redacted_thinking", "data": "b3BhcXVl"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }
