"""``POST /v1/responses`` bodies -> engine requests, and invalid or unsupported bodies -> the exact 400.

Valid bodies in the tables are first checked against the openai SDK's own ``ResponseCreateParams`` types, so
every case is a body a real client may send.
"""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest
from openai.types.responses import response_create_params

from adapters.types import (
    ImageBlock,
    MessageV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from compat.errors import RequestValidationError, UnsupportedParameter
from compat.openai.responses_request import (
    IGNORED_FIELDS,
    MAPPED_FIELDS,
    UNSUPPORTED_FIELDS,
    parse_responses_request,
)

from .sdk_shapes import assert_sdk_accepts_responses_body

RVE = RequestValidationError
UNS = UnsupportedParameter
DROP = object()
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
PNG = b"\x89PNG\r\n\x1a\n"
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}
CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "m", "input": "hi"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def user(text: str) -> MessageV2:
    return MessageV2(Role.USER, (TextBlock(text),))


# --- what valid bodies become ----------------------------------------------------------------------------

MESSAGES: list[tuple[str, Any, str | None, tuple[MessageV2, ...]]] = [
    ("string input", "hi", None, (user("hi"),)),
    ("instructions first", "hi", "be brief", (MessageV2(Role.SYSTEM, (TextBlock("be brief"),)), user("hi"))),
    ("message without type", [{"role": "user", "content": "hi"}], None, (user("hi"),)),
    (
        "typed message with parts",
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]}],
        None,
        (user("a"),),
    ),
    (
        "image part",
        [{"role": "user", "content": [{"type": "input_image", "image_url": PNG_URL, "detail": "low"}]}],
        None,
        (MessageV2(Role.USER, (ImageBlock("image/png", PNG, "low"),)),),
    ),
    (
        "developer is system",
        [{"role": "developer", "content": "rules"}, {"role": "system", "content": "more"}],
        None,
        (MessageV2(Role.SYSTEM, (TextBlock("rules"),)), MessageV2(Role.SYSTEM, (TextBlock("more"),))),
    ),
    (
        "assistant text parts, refusal and call join one message",
        [
            {"role": "user", "content": "weather?"},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "let me see", "annotations": []},
                    {"type": "refusal", "refusal": "no"},
                ],
            },
            CALL,
            OUTPUT,
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "assistant", "content": "sunny it is"},
        ],
        None,
        (
            user("weather?"),
            MessageV2(
                Role.ASSISTANT,
                (
                    TextBlock("let me see"),
                    TextBlock("no"),
                    ToolUseBlock("call_1", "get_weather", '{"city": "Oslo"}'),
                ),
            ),
            MessageV2(Role.TOOL, (ToolResultBlock("call_1", "sunny"),)),
            MessageV2(Role.ASSISTANT, (TextBlock("sunny it is"),)),
        ),
    ),
    (
        "call first starts an assistant message; output as text parts",
        [
            CALL,
            {**OUTPUT, "output": [{"type": "input_text", "text": "su"}, {"type": "input_text", "text": "nny"}]},
        ],
        None,
        (
            MessageV2(Role.ASSISTANT, (ToolUseBlock("call_1", "get_weather", '{"city": "Oslo"}'),)),
            MessageV2(Role.TOOL, (ToolResultBlock("call_1", "sunny"),)),
        ),
    ),
]


@pytest.mark.parametrize(("name", "value", "instructions", "expected"), MESSAGES, ids=[c[0] for c in MESSAGES])
def test_input_becomes_engine_messages(
    name: str, value: Any, instructions: str | None, expected: tuple[MessageV2, ...]
) -> None:
    raw = body(input=value, instructions=instructions)
    assert_sdk_accepts_responses_body(raw)
    assert parse_responses_request(raw).request.messages == expected


def test_every_mapped_setting_reaches_the_engine_and_the_echo() -> None:
    raw = body(
        instructions="be brief",
        tools=[
            {**TOOL, "description": "weather", "strict": False},
            {"type": "function", "name": "other", "parameters": None, "strict": None},
        ],
        tool_choice={"type": "function", "name": "other"},
        parallel_tool_calls=False,
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=32,
        metadata={"k": "v"},
        user="u1",
        stream=True,
        stream_options={"include_obfuscation": False},
        store=False,
        include=["reasoning.encrypted_content"],
        truncation="disabled",
        background=False,
        top_logprobs=0,
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    )
    assert_sdk_accepts_responses_body(raw)
    parsed = parse_responses_request({**raw, "top_k": 5, "min_p": 0.1, "n": 1, "logprobs": False})
    req = parsed.request
    assert parsed.stream is True and parsed.user == "u1" and parsed.model == "m"
    assert req.tools == (
        ToolSpec("get_weather", "weather", {"type": "object"}, strict=False),
        ToolSpec("other", None, {}, strict=True),
    )
    assert req.tool_choice == ToolChoice(ToolChoiceMode.NAMED, "other")
    assert req.parallel_tool_calls is False
    assert req.response_format == ResponseFormat(
        ResponseFormatKind.JSON_SCHEMA, name="out", schema={"type": "object"}, strict=True
    )
    s = req.sampling
    assert (s.temperature, s.top_p, s.max_tokens, s.top_k, s.min_p) == (0.5, 0.9, 32, 5, 0.1)
    assert parsed.settings == {
        "instructions": "be brief",
        "max_output_tokens": 32,
        "metadata": {"k": "v"},
        "parallel_tool_calls": False,
        "temperature": 0.5,
        "top_p": 0.9,
        "tool_choice": {"type": "function", "name": "other"},
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "object"},
                "strict": False,
            },
            {"type": "function", "name": "other", "description": None, "parameters": {}, "strict": True},
        ],
        "text": {
            "format": {
                "type": "json_schema",
                "name": "out",
                "schema": {"type": "object"},
                "strict": True,
                "description": None,
            }
        },
        "truncation": "disabled",
        "store": False,
        "background": False,
        "user": "u1",
    }


def test_an_empty_tools_array_is_no_tools() -> None:
    assert parse_responses_request(body(tools=[])).request.tools == ()


def test_defaults() -> None:
    parsed = parse_responses_request(body())
    req = parsed.request
    assert parsed.stream is False and parsed.user is None
    assert req.tools == () and req.tool_choice == ToolChoice() and req.parallel_tool_calls is True
    assert req.response_format == ResponseFormat() and req.sampling.max_tokens is None and req.prompt is None
    assert parsed.settings["tool_choice"] == "auto" and parsed.settings["text"] == {"format": {"type": "text"}}
    assert parsed.settings["metadata"] == {} and parsed.settings["tools"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"verbosity": "low"}, ResponseFormat()),
        ({"format": {"type": "text"}}, ResponseFormat()),
        ({"format": {"type": "json_object"}}, ResponseFormat(ResponseFormatKind.JSON_OBJECT)),
    ],
)
def test_text_formats(text: dict[str, Any], expected: ResponseFormat) -> None:
    raw = body(text=text)
    assert_sdk_accepts_responses_body(raw)
    parsed = parse_responses_request(raw)
    assert parsed.request.response_format == expected
    assert parsed.settings["text"] == {"format": {"type": expected.kind.value}}


@pytest.mark.parametrize(
    ("choice", "mode"),
    [("auto", ToolChoiceMode.AUTO), ("none", ToolChoiceMode.NONE), ("required", ToolChoiceMode.REQUIRED)],
)
def test_tool_choice_strings(choice: str, mode: ToolChoiceMode) -> None:
    parsed = parse_responses_request(body(tools=[TOOL], tool_choice=choice))
    assert parsed.request.tool_choice == ToolChoice(mode)
    assert parsed.settings["tool_choice"] == choice


# --- errors ------------------------------------------------------------------------------------------------

ERRORS: list[tuple[str, dict[str, Any], type[RVE], str | None, str]] = [
    ("model missing", {"model": DROP}, RVE, "model", "missing_field"),
    ("input missing", {"input": DROP}, RVE, "input", "missing_field"),
    ("input a number", {"input": 5}, RVE, "input", "invalid_type"),
    ("input empty", {"input": []}, RVE, "input", "invalid_value"),
    (
        "only reasoning",
        {"input": [{"type": "reasoning", "id": "r", "summary": []}]},
        RVE,
        "input",
        "invalid_value",
    ),
    ("item not an object", {"input": ["hi"]}, RVE, "input[0]", "invalid_type"),
    ("item type not a string", {"input": [{"type": 1}]}, RVE, "input[0].type", "invalid_type"),
    ("unknown item type", {"input": [{"type": "nope"}]}, RVE, "input[0].type", "invalid_value"),
    (
        "item reference",
        {"input": [{"type": "item_reference", "id": "x"}]},
        UNS,
        "input[0].type",
        "unsupported_parameter",
    ),
    ("hosted tool item", {"input": [{"type": "web_search_call"}]}, UNS, "input[0].type", "unsupported_parameter"),
    ("role missing", {"input": [{"content": "hi"}]}, RVE, "input[0].role", "missing_field"),
    ("unknown role", {"input": [{"role": "tool", "content": "x"}]}, RVE, "input[0].role", "invalid_value"),
    ("content missing", {"input": [{"role": "user"}]}, RVE, "input[0].content", "missing_field"),
    ("content a number", {"input": [{"role": "user", "content": 1}]}, RVE, "input[0].content", "invalid_type"),
    ("content empty", {"input": [{"role": "user", "content": []}]}, RVE, "input[0].content", "invalid_value"),
    (
        "part not an object",
        {"input": [{"role": "user", "content": ["x"]}]},
        RVE,
        "input[0].content[0]",
        "invalid_type",
    ),
    (
        "output_text in a user turn",
        {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
        RVE,
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "image in a system turn",
        {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": PNG_URL}]}]},
        RVE,
        "input[0].content[0].type",
        "invalid_value",
    ),
    (
        "file part",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
        UNS,
        "input[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "text part without text",
        {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
        RVE,
        "input[0].content[0].text",
        "missing_field",
    ),
    (
        "image by file id",
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f", "detail": "auto"}]}]},
        UNS,
        "input[0].content[0].file_id",
        "unsupported_parameter",
    ),
    (
        "image remote url",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]},
        RVE,
        "input[0].content[0].image_url",
        "invalid_image_url",
    ),
    (
        "image bad detail",
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": PNG_URL, "detail": "x"}]}]},
        RVE,
        "input[0].content[0].detail",
        "invalid_value",
    ),
    (
        "call without call_id",
        {"input": [{k: v for k, v in CALL.items() if k != "call_id"}]},
        RVE,
        "input[0].call_id",
        "missing_field",
    ),
    ("call name empty", {"input": [{**CALL, "name": ""}]}, RVE, "input[0].name", "invalid_value"),
    (
        "call arguments not JSON",
        {"input": [{**CALL, "arguments": "{"}]},
        RVE,
        "input[0].arguments",
        "invalid_json",
    ),
    (
        "call arguments an array",
        {"input": [{**CALL, "arguments": "[]"}]},
        RVE,
        "input[0].arguments",
        "invalid_value",
    ),
    ("orphan output", {"input": [OUTPUT]}, RVE, "input[0].call_id", "invalid_value"),
    (
        "output missing",
        {"input": [CALL, {k: v for k, v in OUTPUT.items() if k != "output"}]},
        RVE,
        "input[1].output",
        "missing_field",
    ),
    ("output a number", {"input": [CALL, {**OUTPUT, "output": 3}]}, RVE, "input[1].output", "invalid_type"),
    (
        "output with an image",
        {"input": [CALL, {**OUTPUT, "output": [{"type": "input_image", "image_url": PNG_URL}]}]},
        RVE,
        "input[1].output[0].type",
        "invalid_value",
    ),
    ("instructions a number", {"instructions": 1}, RVE, "instructions", "invalid_type"),
    ("tools not a list", {"tools": {}}, RVE, "tools", "invalid_type"),
    ("tool not an object", {"tools": [1]}, RVE, "tools[0]", "invalid_type"),
    ("tool without type", {"tools": [{"name": "f"}]}, RVE, "tools[0].type", "missing_field"),
    ("hosted tool", {"tools": [{"type": "web_search"}]}, UNS, "tools[0].type", "unsupported_parameter"),
    ("tool name bad", {"tools": [{"type": "function", "name": "a b"}]}, RVE, "tools[0].name", "invalid_value"),
    ("tool names twice", {"tools": [TOOL, TOOL]}, RVE, "tools[1].name", "invalid_value"),
    (
        "tool parameters not an object schema",
        {"tools": [{**TOOL, "parameters": {"type": "string"}}]},
        RVE,
        "tools[0].parameters",
        "invalid_value",
    ),
    ("tool strict not a bool", {"tools": [{**TOOL, "strict": "yes"}]}, RVE, "tools[0].strict", "invalid_type"),
    ("tool_choice a number", {"tool_choice": 1}, RVE, "tool_choice", "invalid_type"),
    ("tool_choice unknown string", {"tool_choice": "any"}, RVE, "tool_choice", "invalid_value"),
    ("required without tools", {"tool_choice": "required"}, RVE, "tool_choice", "invalid_value"),
    (
        "hosted tool_choice",
        {"tool_choice": {"type": "web_search_preview"}},
        UNS,
        "tool_choice.type",
        "unsupported_parameter",
    ),
    (
        "named choice without name",
        {"tools": [TOOL], "tool_choice": {"type": "function"}},
        RVE,
        "tool_choice.name",
        "missing_field",
    ),
    (
        "named choice not offered",
        {"tools": [TOOL], "tool_choice": {"type": "function", "name": "x"}},
        RVE,
        "tool_choice.name",
        "invalid_value",
    ),
    ("text not an object", {"text": "json"}, RVE, "text", "invalid_type"),
    ("text format unknown", {"text": {"format": {"type": "xml"}}}, RVE, "text.format.type", "invalid_value"),
    (
        "json_schema without schema",
        {"text": {"format": {"type": "json_schema", "name": "n"}}},
        RVE,
        "text.format.schema",
        "missing_field",
    ),
    ("temperature too high", {"temperature": 3}, RVE, "temperature", "invalid_value"),
    ("max_output_tokens zero", {"max_output_tokens": 0}, RVE, "max_output_tokens", "invalid_value"),
    ("parallel not a bool", {"parallel_tool_calls": 1}, RVE, "parallel_tool_calls", "invalid_type"),
    ("metadata not an object", {"metadata": []}, RVE, "metadata", "invalid_type"),
    ("stream not a bool", {"stream": "yes"}, RVE, "stream", "invalid_type"),
    (
        "stream_options bad",
        {"stream_options": {"include_obfuscation": 1}},
        RVE,
        "stream_options.include_obfuscation",
        "invalid_type",
    ),
    ("background true", {"background": True}, UNS, "background", "unsupported_parameter"),
    ("truncation auto", {"truncation": "auto"}, UNS, "truncation", "unsupported_parameter"),
    ("truncation unknown", {"truncation": "some"}, RVE, "truncation", "invalid_value"),
    ("top_logprobs", {"top_logprobs": 2}, UNS, "top_logprobs", "unsupported_parameter"),
    ("chat n", {"n": 2}, UNS, "n", "unsupported_parameter"),
    ("chat n not an integer", {"n": "2"}, RVE, "n", "invalid_type"),
    ("chat logprobs", {"logprobs": True}, UNS, "logprobs", "unsupported_parameter"),
    ("chat logprobs not a boolean", {"logprobs": 1}, RVE, "logprobs", "invalid_type"),
    ("include not a list", {"include": "x"}, RVE, "include", "invalid_type"),
    ("include not strings", {"include": [1]}, RVE, "include[0]", "invalid_type"),
    (
        "include logprobs",
        {"include": ["message.output_text.logprobs"]},
        UNS,
        "include[0]",
        "unsupported_parameter",
    ),
    ("user not a string", {"user": 1}, RVE, "user", "invalid_type"),
]


@pytest.mark.parametrize(("name", "overrides", "error", "param", "code"), ERRORS, ids=[c[0] for c in ERRORS])
def test_invalid_body_is_a_400_naming_the_field(
    name: str, overrides: dict[str, Any], error: type[RVE], param: str | None, code: str
) -> None:
    with pytest.raises(error) as info:
        parse_responses_request(body(**overrides))
    assert type(info.value) is error
    assert (info.value.param, info.value.code, info.value.http_status) == (param, code, 400)


@pytest.mark.parametrize("raw", [[], "x", 1, None], ids=repr)
def test_body_must_be_an_object(raw: object) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_responses_request(raw)
    assert info.value.code == "invalid_type"


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_FIELDS))
def test_unsupported_fields_are_refused_when_set(name: str) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        parse_responses_request(body(**{name: "x"}))
    assert info.value.param == name
    parse_responses_request(body(**{name: None}))  # null means "not given"


@pytest.mark.parametrize("name", sorted(IGNORED_FIELDS))
def test_ignored_fields_are_still_type_checked(name: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_responses_request(body(**{name: 12345}))
    assert info.value.param == name


def test_every_sdk_field_has_a_fate() -> None:
    sdk = set(get_type_hints(response_create_params.ResponseCreateParamsStreaming))
    handled = MAPPED_FIELDS | set(UNSUPPORTED_FIELDS) | set(IGNORED_FIELDS)
    assert sdk - handled == set()
    assert handled - sdk == {"top_k", "min_p", "n", "logprobs"}
    assert not MAPPED_FIELDS & set(UNSUPPORTED_FIELDS) and not MAPPED_FIELDS & set(IGNORED_FIELDS)
