"""Valid chat bodies -> the exact engine request, as a table. Every body is first checked to be a request the
openai SDK's own types accept, so the table holds what real clients send."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from adapters.types import (
    ImageBlock,
    Message,
    MessageV2,
    Resolved,
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    SamplingParams,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from compat.openai.chat_request import ChatRequest, parse_chat_request

from .sdk_shapes import assert_sdk_accepts_chat_body

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER_SCHEMA},
}
HI = [{"role": "user", "content": "hi"}]
HI_V2 = (MessageV2(Role.USER, (TextBlock("hi"),)),)


def chat(
    messages: tuple[MessageV2, ...] = HI_V2,
    *,
    stream: bool = False,
    include_usage: bool = False,
    user: str | None = None,
    **request: Any,
) -> ChatRequest:
    return ChatRequest(
        model="m",
        stream=stream,
        include_usage=include_usage,
        request=ResolvedV2(model="m", messages=messages, **request),
        user=user,
    )


# (id, body without "model", expected ChatRequest)
CASES: list[tuple[str, dict[str, Any], ChatRequest]] = [
    ("minimal", {"messages": HI}, chat()),
    (
        "every role, developer is system",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": "be kind", "name": "ops"},
                {"role": "user", "content": "hi", "name": "ann"},
                {"role": "assistant", "content": "hello"},
            ]
        },
        chat(
            (
                MessageV2(Role.SYSTEM, (TextBlock("be brief"),)),
                MessageV2(Role.SYSTEM, (TextBlock("be kind"),)),
                MessageV2(Role.USER, (TextBlock("hi"),)),
                MessageV2(Role.ASSISTANT, (TextBlock("hello"),)),
            )
        ),
    ),
    (
        "every sampling field",
        {
            "messages": HI,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 40,
            "min_p": 0.05,
            "max_tokens": 16,
            "stop": ["END", "\n\n"],
            "seed": -7,
            "presence_penalty": -2,
            "frequency_penalty": 2.0,
            "logit_bias": {"50256": -100, "7": 5},
        },
        chat(
            sampling=SamplingParams(
                temperature=0.7,
                top_p=0.9,
                top_k=40,
                min_p=0.05,
                max_tokens=16,
                stop=("END", "\n\n"),
                seed=-7,
                presence_penalty=-2.0,
                frequency_penalty=2.0,
                logit_bias=((50256, -100.0), (7, 5.0)),
            )
        ),
    ),
    (
        "range edges",
        {"messages": HI, "temperature": 0, "top_p": 1, "max_tokens": 1, "top_k": 0, "min_p": 1},
        chat(sampling=SamplingParams(temperature=0.0, top_p=1.0, max_tokens=1, top_k=0, min_p=1.0)),
    ),
    (
        "max_completion_tokens is max_tokens",
        {"messages": HI, "max_completion_tokens": 32},
        chat(sampling=SamplingParams(max_tokens=32)),
    ),
    (
        "both token limits, same value",
        {"messages": HI, "max_completion_tokens": 32, "max_tokens": 32},
        chat(sampling=SamplingParams(max_tokens=32)),
    ),
    ("stop as a string", {"messages": HI, "stop": "###"}, chat(sampling=SamplingParams(stop=("###",)))),
    ("n choices", {"messages": HI, "n": 3}, chat(sampling=SamplingParams(n=3))),
    ("logprobs alone", {"messages": HI, "logprobs": True}, chat(sampling=SamplingParams(top_logprobs=0))),
    (
        "logprobs with alternatives",
        {"messages": HI, "logprobs": True, "top_logprobs": 5},
        chat(sampling=SamplingParams(top_logprobs=5)),
    ),
    ("stop as an empty list", {"messages": HI, "stop": []}, chat()),
    ("stream", {"messages": HI, "stream": True}, chat(stream=True)),
    (
        "stream with usage",
        {"messages": HI, "stream": True, "stream_options": {"include_usage": True, "include_obfuscation": False}},
        chat(stream=True, include_usage=True),
    ),
    (
        "stream_options without stream has no effect",
        {"messages": HI, "stream": False, "stream_options": {"include_usage": True}},
        chat(),
    ),
    ("user", {"messages": HI, "user": "user-42"}, chat(user="user-42")),
    (
        "tools, named choice, no parallel calls",
        {
            "messages": HI,
            "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "now", "strict": True}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        chat(
            tools=(
                ToolSpec("get_weather", "Weather by city", WEATHER_SCHEMA),
                ToolSpec("now", None, {}, strict=True),
            ),
            tool_choice=ToolChoice(ToolChoiceMode.NAMED, "get_weather"),
            parallel_tool_calls=False,
        ),
    ),
    (
        "tool_choice required",
        {"messages": HI, "tools": [WEATHER_TOOL], "tool_choice": "required"},
        chat(
            tools=(ToolSpec("get_weather", "Weather by city", WEATHER_SCHEMA),),
            tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
        ),
    ),
    (
        "tool_choice none with tools",
        {"messages": HI, "tools": [WEATHER_TOOL], "tool_choice": "none"},
        chat(
            tools=(ToolSpec("get_weather", "Weather by city", WEATHER_SCHEMA),),
            tool_choice=ToolChoice(ToolChoiceMode.NONE),
        ),
    ),
    ("tool_choice auto without tools", {"messages": HI, "tool_choice": "auto"}, chat()),
    (
        "tool_choice none without tools",
        {"messages": HI, "tool_choice": "none"},
        chat(tool_choice=ToolChoice(ToolChoiceMode.NONE)),
    ),
    ("response_format text", {"messages": HI, "response_format": {"type": "text"}}, chat()),
    (
        "response_format json_object",
        {"messages": HI, "response_format": {"type": "json_object"}},
        chat(response_format=ResponseFormat(ResponseFormatKind.JSON_OBJECT)),
    ),
    (
        "response_format json_schema",
        {
            "messages": HI,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "weather", "description": "d", "schema": WEATHER_SCHEMA, "strict": True},
            },
        },
        chat(
            response_format=ResponseFormat(
                ResponseFormatKind.JSON_SCHEMA, name="weather", schema=WEATHER_SCHEMA, strict=True
            )
        ),
    ),
    (
        "tool call round trip",
        {
            "messages": [
                {"role": "user", "content": "weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "4 C, rain"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
            ],
            "tools": [WEATHER_TOOL],
        },
        chat(
            (
                MessageV2(Role.USER, (TextBlock("weather in Oslo?"),)),
                MessageV2(
                    Role.ASSISTANT,
                    (
                        ToolUseBlock("call_1", "get_weather", '{"city": "Oslo"}'),
                        ToolUseBlock("call_2", "now", "{}"),
                    ),
                ),
                MessageV2(Role.TOOL, (ToolResultBlock("call_1", "4 C, rain"),)),
                MessageV2(Role.TOOL, (ToolResultBlock("call_2", "12:00"),)),
            ),
            tools=(ToolSpec("get_weather", "Weather by city", WEATHER_SCHEMA),),
        ),
    ),
    (
        "assistant text and tool calls, empty text dropped",
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": "checking",
                    "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
            ]
        },
        chat(
            (
                MessageV2(Role.ASSISTANT, (TextBlock("checking"), ToolUseBlock("a", "f", "{}"))),
                MessageV2(Role.ASSISTANT, (ToolUseBlock("b", "f", "{}"),)),
            )
        ),
    ),
    (
        "content parts: text, image, refusal",
        {
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "sys"}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
                        {"type": "image_url", "image_url": {"url": PNG_URL}},
                    ],
                },
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't say."}]},
                {"role": "assistant", "content": "", "refusal": "ignored"},
            ]
        },
        chat(
            (
                MessageV2(Role.SYSTEM, (TextBlock("sys"),)),
                MessageV2(
                    Role.USER,
                    (
                        TextBlock("what is this?"),
                        ImageBlock("image/png", PNG, "low"),
                        ImageBlock("image/png", PNG, None),
                    ),
                ),
                MessageV2(Role.ASSISTANT, (TextBlock("I can't say."),)),
                MessageV2(Role.ASSISTANT, (TextBlock(""),)),
            )
        ),
    ),
    (
        "null means not given",
        {
            "messages": HI,
            **dict.fromkeys(
                [
                    "temperature",
                    "top_p",
                    "n",
                    "stop",
                    "max_tokens",
                    "max_completion_tokens",
                    "presence_penalty",
                    "frequency_penalty",
                    "logit_bias",
                    "logprobs",
                    "top_logprobs",
                    "seed",
                    "stream",
                    "stream_options",
                    "audio",
                    "modalities",
                    "prediction",
                    "metadata",
                    "store",
                    "service_tier",
                    "reasoning_effort",
                    "verbosity",
                    "prompt_cache_key",
                    "safety_identifier",
                    "moderation",
                    "prompt_cache_retention",
                ]
            ),
        },
        chat(),
    ),
    (
        "defaults spelled out are accepted",
        {"messages": HI, "n": 1, "logprobs": False, "top_logprobs": 0, "modalities": ["text"]},
        chat(),
    ),
    (
        "ignored fields change nothing",
        {
            "messages": HI,
            "service_tier": "flex",
            "store": True,
            "metadata": {"team": "a"},
            "reasoning_effort": "high",
            "verbosity": "low",
            "prediction": {"type": "content", "content": "hello"},
            "prompt_cache_key": "k",
            "prompt_cache_retention": "24h",
            "prompt_cache_options": {"mode": "implicit"},
            "safety_identifier": "hash",
        },
        chat(),
    ),
    (
        "unknown top-level fields (extra_body) are ignored",
        {"messages": HI, "repetition_penalty": 1.1, "chat_template_kwargs": {"x": [1]}, "cache_prompt": True},
        chat(),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_valid_body_maps_to_engine_request(body: dict[str, Any], expected: ChatRequest) -> None:
    full = {"model": "m", **body}
    assert_sdk_accepts_chat_body(full)
    assert parse_chat_request(full) == expected


def test_plain_text_request_dispatches_as_v1() -> None:
    chat_request = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            ],
            "temperature": 0.5,
        }
    )
    assert not chat_request.request.needs_v2()
    assert chat_request.request.to_v1() == Resolved(
        model="m",
        messages=(Message(Role.SYSTEM, "sys"), Message(Role.USER, "ab")),
        sampling=SamplingParams(temperature=0.5),
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [WEATHER_TOOL]},
        {"response_format": {"type": "json_object"}},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}]},
    ],
    ids=["tools", "json mode", "image"],
)
def test_typed_features_need_v2(extra: dict[str, Any]) -> None:
    assert parse_chat_request({"model": "m", "messages": HI, **extra}).request.needs_v2()
