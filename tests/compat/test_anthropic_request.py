"""Anthropic Messages bodies -> engine requests: what each field becomes, checked against the SDK's own types."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from adapters.types import (
    ImageBlock,
    MessageV2,
    RedactedThinkingBlock,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    SamplingParams,
    TextBlock,
    ThinkingBlock,
    ThinkingConfig,
    ThinkingMode,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from compat.anthropic.request import parse_count_tokens_request, parse_messages_request

from .anthropic_shapes import assert_sdk_accepts_count_tokens_body, assert_sdk_accepts_messages_body

PNG = base64.b64encode(b"\x89PNG fake image bytes").decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **fields}


def hi() -> MessageV2:
    return MessageV2(Role.USER, (TextBlock("hi"),))


def tool_round_trip() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "sunny",
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "and tomorrow?"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    "is_error": True,
                },
                {"type": "tool_result", "tool_use_id": "toolu_1"},
            ],
        },
    ]


def test_minimal_body() -> None:
    parsed = parse_messages_request(body())
    assert (parsed.model, parsed.stream, parsed.user_id) == ("m", False, None)
    assert parsed.request.messages == (hi(),)
    assert parsed.request.sampling == SamplingParams(max_tokens=64)
    assert parsed.request.tools == ()
    assert parsed.request.tool_choice == ToolChoice()
    assert parsed.request.parallel_tool_calls is True
    assert parsed.request.response_format == ResponseFormat()


def test_sampling_stream_metadata_and_ignored_fields() -> None:
    raw = body(
        max_tokens=2048,
        temperature=0.5,
        top_p=1,
        top_k=40,
        stop_sequences=["END", "\n\nHuman:"],
        stream=True,
        metadata={"user_id": "user_abc"},
        service_tier="auto",
        context_management={"edits": []},
        thinking={"type": "enabled", "budget_tokens": 1024},
        unknown_extension={"anything": 1},
    )
    parsed = parse_messages_request(raw)
    assert parsed.stream is True
    assert parsed.user_id == "user_abc"
    assert parsed.request.sampling == SamplingParams(
        temperature=0.5, top_p=1.0, top_k=40, max_tokens=2048, stop=("END", "\n\nHuman:")
    )


@pytest.mark.parametrize(
    ("thinking", "config"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, ThinkingConfig(ThinkingMode.ENABLED, 1024)),
        ({"type": "disabled"}, ThinkingConfig(ThinkingMode.DISABLED)),
        ({"type": "adaptive"}, ThinkingConfig(ThinkingMode.ADAPTIVE)),
    ],
)
def test_thinking_becomes_the_requests_reasoning_switch(thinking: dict[str, Any], config: ThinkingConfig) -> None:
    parsed = parse_messages_request(body(thinking=thinking, max_tokens=2048)).request
    assert (parsed.messages, parsed.thinking) == ((hi(),), config)
    counted = parse_count_tokens_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "thinking": thinking}
    )
    assert counted.thinking == config
    assert parse_messages_request(body()).request.thinking is None


def test_metadata_without_user_id() -> None:
    assert parse_messages_request(body(metadata={})).user_id is None


def test_system_string_and_blocks() -> None:
    as_string = parse_messages_request(body(system="Be brief."))
    assert as_string.request.messages == (MessageV2(Role.SYSTEM, (TextBlock("Be brief."),)), hi())
    blocks = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Be brief."},
    ]
    as_blocks = parse_messages_request(body(system=blocks))
    system = MessageV2(Role.SYSTEM, (TextBlock("You are Claude Code."), TextBlock("Be brief.")))
    assert as_blocks.request.messages == (system, hi())


@pytest.mark.parametrize("system", ["", []])
def test_empty_system_adds_no_message(system: Any) -> None:
    assert parse_messages_request(body(system=system)).request.messages == (hi(),)


def test_tool_round_trip() -> None:
    raw = body(messages=tool_round_trip(), tools=[WEATHER])
    assert_sdk_accepts_messages_body(raw)
    messages = parse_messages_request(raw).request.messages
    assert messages == (
        MessageV2(Role.USER, (TextBlock("weather in Paris?"),)),
        MessageV2(
            Role.ASSISTANT,
            (
                ThinkingBlock("I should call the tool.", "sig"),
                TextBlock("Let me check."),
                ToolUseBlock("toolu_1", "get_weather", json.dumps({"city": "Paris"}, separators=(",", ":"))),
            ),
        ),
        MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", "sunny"),)),
        MessageV2(Role.USER, (TextBlock("and tomorrow?"),)),
        MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", "a\nb", is_error=True),)),
        MessageV2(Role.TOOL, (ToolResultBlock("toolu_1", ""),)),
    )


def test_thinking_blocks_are_kept_until_a_backend_that_cannot_take_them() -> None:
    """Reasoning blocks reach the engine request unchanged (a signature byte for byte);
    `ResolvedV2.without_thinking_blocks` is the form for other backends, an assistant turn of only reasoning gone
    with them. An empty signature is what trinfer's local models give their reasoning."""
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": ""},
                {"type": "text", "text": "plain"},
            ],
        },
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    raw = body(messages=messages)
    assert_sdk_accepts_messages_body(raw)
    request = parse_messages_request(raw).request
    assert request.messages == (
        hi(),
        MessageV2(Role.ASSISTANT, (RedactedThinkingBlock("opaque"),)),
        MessageV2(Role.ASSISTANT, (ThinkingBlock("hm", ""), TextBlock("plain"))),
        MessageV2(Role.USER, (TextBlock("again"),)),
    )
    assert request.without_thinking_blocks().messages == (
        hi(),
        MessageV2(Role.ASSISTANT, (TextBlock("plain"),)),
        MessageV2(Role.USER, (TextBlock("again"),)),
    )
    plain = parse_messages_request(body()).request
    assert plain.without_thinking_blocks() is plain


def test_base64_image() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "what is this?"},
    ]
    raw = body(messages=[{"role": "user", "content": content}])
    assert_sdk_accepts_messages_body(raw)
    (message,) = parse_messages_request(raw).request.messages
    assert message == MessageV2(
        Role.USER, (ImageBlock("image/png", b"\x89PNG fake image bytes"), TextBlock("what is this?"))
    )


def test_tools_and_choices() -> None:
    second = {
        "name": "lookup-2",
        "input_schema": {"type": "object"},
        "type": "custom",
        "cache_control": {"type": "ephemeral"},
        "strict": True,
    }
    raw = body(
        tools=[WEATHER, second],
        tool_choice={"type": "tool", "name": "lookup-2", "disable_parallel_tool_use": True},
    )
    assert_sdk_accepts_messages_body(raw)
    request = parse_messages_request(raw).request
    assert request.tools == (
        ToolSpec("get_weather", "Weather for a city", SCHEMA),
        ToolSpec("lookup-2", None, {"type": "object"}, strict=True),
    )
    assert request.tool_choice == ToolChoice(ToolChoiceMode.NAMED, "lookup-2")
    assert request.parallel_tool_calls is False


@pytest.mark.parametrize(
    ("choice", "mode"),
    [
        ({"type": "auto"}, ToolChoiceMode.AUTO),
        ({"type": "any"}, ToolChoiceMode.REQUIRED),
        ({"type": "none"}, ToolChoiceMode.NONE),
    ],
)
def test_tool_choice_modes(choice: dict[str, Any], mode: ToolChoiceMode) -> None:
    request = parse_messages_request(body(tools=[WEATHER], tool_choice=choice)).request
    assert request.tool_choice == ToolChoice(mode)
    assert request.parallel_tool_calls is True


def test_empty_tools_list_and_auto_without_tools() -> None:
    request = parse_messages_request(body(tools=[], tool_choice={"type": "auto"})).request
    assert request.tools == ()


@pytest.mark.parametrize(
    "fields",
    [
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}},
        {"output_format": {"type": "json_schema", "schema": SCHEMA}},
        {"output_config": {"effort": "high"}, "output_format": {"type": "json_schema", "schema": SCHEMA}},
    ],
)
def test_structured_outputs(fields: dict[str, Any]) -> None:
    request = parse_messages_request(body(**fields)).request
    assert request.response_format == ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="output", schema=SCHEMA)


def test_output_config_without_format_is_text() -> None:
    assert (
        parse_messages_request(body(output_config={"effort": "low"})).request.response_format == ResponseFormat()
    )


def test_count_tokens_body_has_no_max_tokens() -> None:
    raw = {
        "model": "m",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 4096},
    }
    assert_sdk_accepts_count_tokens_body(raw)
    request = parse_count_tokens_request(raw)
    assert request.sampling.max_tokens is None
    assert request.messages == (MessageV2(Role.SYSTEM, (TextBlock("Be brief."),)), hi())
    assert [tool.name for tool in request.tools] == ["get_weather"]
