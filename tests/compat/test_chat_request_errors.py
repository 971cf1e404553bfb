"""Invalid or unsupported chat bodies -> the exact 400 a client gets: error class, ``param`` path and ``code``."""

from __future__ import annotations

from typing import Any

import pytest

from compat.errors import RequestValidationError, UnsupportedParameter
from compat.openai.chat_request import IGNORED_FIELDS, UNSUPPORTED_FIELDS, parse_chat_request
from compat.openai.errors import render_error

RVE = RequestValidationError
UNS = UnsupportedParameter
DROP = object()  # marks a key to remove from the base body

PNG_URL = "data:image/png;base64,iVBORw0KGgo="
TOOL = {"type": "function", "function": {"name": "f"}}


def call(arguments: Any = "{}", **overrides: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}, **overrides}


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


def assistant(**fields: Any) -> list[dict[str, Any]]:
    return [{"role": "assistant", **fields}]


# (id, overrides of {"model": "m", "messages": [user "hi"]}, class, param, code)
CASES: list[tuple[str, dict[str, Any], type[RVE], str | None, str]] = [
    ("model missing", {"model": DROP}, RVE, "model", "missing_field"),
    ("model not a string", {"model": 5}, RVE, "model", "invalid_type"),
    ("model empty", {"model": ""}, RVE, "model", "invalid_value"),
    ("messages missing", {"messages": DROP}, RVE, "messages", "missing_field"),
    ("messages not a list", {"messages": "hi"}, RVE, "messages", "invalid_type"),
    ("messages empty", {"messages": []}, RVE, "messages", "invalid_value"),
    ("message not an object", {"messages": ["hi"]}, RVE, "messages[0]", "invalid_type"),
    ("role missing", {"messages": [{"content": "x"}]}, RVE, "messages[0].role", "missing_field"),
    ("role not a string", {"messages": [{"role": 1, "content": "x"}]}, RVE, "messages[0].role", "invalid_type"),
    ("role unknown", {"messages": [{"role": "robot", "content": "x"}]}, RVE, "messages[0].role", "invalid_value"),
    (
        "role function",
        {"messages": [{"role": "function", "name": "f", "content": "x"}]},
        UNS,
        "messages[0].role",
        "unsupported_parameter",
    ),
    ("content missing", {"messages": [{"role": "user"}]}, RVE, "messages[0].content", "missing_field"),
    ("content null", {"messages": user(None)}, RVE, "messages[0].content", "invalid_type"),
    ("content a number", {"messages": user(5)}, RVE, "messages[0].content", "invalid_type"),
    ("content empty array", {"messages": user([])}, RVE, "messages[0].content", "invalid_value"),
    ("part not an object", {"messages": user(["x"])}, RVE, "messages[0].content[0]", "invalid_type"),
    (
        "part type missing",
        {"messages": user([{"text": "x"}])},
        RVE,
        "messages[0].content[0].type",
        "missing_field",
    ),
    (
        "part type unknown",
        {"messages": user([{"type": "video"}])},
        RVE,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "input_audio part",
        {"messages": user([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}])},
        UNS,
        "messages[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "file part",
        {"messages": user([{"type": "text", "text": "a"}, {"type": "file", "file": {"file_id": "f"}}])},
        UNS,
        "messages[0].content[1].type",
        "unsupported_parameter",
    ),
    ("text missing", {"messages": user([{"type": "text"}])}, RVE, "messages[0].content[0].text", "missing_field"),
    (
        "text not a string",
        {"messages": user([{"type": "text", "text": 3}])},
        RVE,
        "messages[0].content[0].text",
        "invalid_type",
    ),
    (
        "image in a system message",
        {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}]},
        RVE,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "image_url missing",
        {"messages": user([{"type": "image_url"}])},
        RVE,
        "messages[0].content[0].image_url",
        "missing_field",
    ),
    (
        "image_url a string",
        {"messages": user([{"type": "image_url", "image_url": PNG_URL}])},
        RVE,
        "messages[0].content[0].image_url",
        "invalid_type",
    ),
    (
        "image url missing",
        {"messages": user([{"type": "image_url", "image_url": {}}])},
        RVE,
        "messages[0].content[0].image_url.url",
        "missing_field",
    ),
    (
        "image detail unknown",
        {"messages": user([{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "ultra"}}])},
        RVE,
        "messages[0].content[0].image_url.detail",
        "invalid_value",
    ),
    (
        "remote image url",
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": "a"},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            ]
        },
        RVE,
        "messages[2].content[0].image_url",
        "invalid_image_url",
    ),
    ("assistant content null", {"messages": assistant(content=None)}, RVE, "messages[0].content", "invalid_type"),
    ("assistant content absent", {"messages": assistant()}, RVE, "messages[0].content", "invalid_type"),
    (
        "assistant image part",
        {"messages": assistant(content=[{"type": "image_url", "image_url": {"url": PNG_URL}}])},
        RVE,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "assistant function_call",
        {"messages": assistant(content=None, function_call={"name": "f", "arguments": "{}"})},
        UNS,
        "messages[0].function_call",
        "unsupported_parameter",
    ),
    (
        "assistant audio",
        {"messages": assistant(content="x", audio={"id": "a"})},
        UNS,
        "messages[0].audio",
        "unsupported_parameter",
    ),
    ("tool_calls empty", {"messages": assistant(tool_calls=[])}, RVE, "messages[0].tool_calls", "invalid_value"),
    (
        "tool_calls an object",
        {"messages": assistant(tool_calls={})},
        RVE,
        "messages[0].tool_calls",
        "invalid_type",
    ),
    (
        "tool call not an object",
        {"messages": assistant(tool_calls=[1])},
        RVE,
        "messages[0].tool_calls[0]",
        "invalid_type",
    ),
    (
        "tool call id missing",
        {"messages": assistant(tool_calls=[{"type": "function", "function": {"name": "f", "arguments": "{}"}}])},
        RVE,
        "messages[0].tool_calls[0].id",
        "missing_field",
    ),
    (
        "tool call id empty",
        {"messages": assistant(tool_calls=[call(id="")])},
        RVE,
        "messages[0].tool_calls[0].id",
        "invalid_value",
    ),
    (
        "tool call custom",
        {"messages": assistant(tool_calls=[call(type="custom")])},
        UNS,
        "messages[0].tool_calls[0].type",
        "unsupported_parameter",
    ),
    (
        "tool call type unknown",
        {"messages": assistant(tool_calls=[call(type="code")])},
        RVE,
        "messages[0].tool_calls[0].type",
        "invalid_value",
    ),
    (
        "tool call function missing",
        {"messages": assistant(tool_calls=[{"id": "c", "type": "function"}])},
        RVE,
        "messages[0].tool_calls[0].function",
        "missing_field",
    ),
    (
        "tool call name empty",
        {"messages": assistant(tool_calls=[call(function={"name": "", "arguments": "{}"})])},
        RVE,
        "messages[0].tool_calls[0].function.name",
        "invalid_value",
    ),
    (
        "tool call arguments missing",
        {"messages": assistant(tool_calls=[call(function={"name": "f"})])},
        RVE,
        "messages[0].tool_calls[0].function.arguments",
        "missing_field",
    ),
    (
        "tool call arguments an object",
        {"messages": assistant(tool_calls=[call({"a": 1})])},
        RVE,
        "messages[0].tool_calls[0].function.arguments",
        "invalid_type",
    ),
    (
        "tool call arguments a JSON array",
        {"messages": [{"role": "user", "content": "x"}, *assistant(content=None, tool_calls=[call("[1]")])]},
        RVE,
        "messages[1].tool_calls[0].function.arguments",
        "invalid_value",
    ),
    (
        "tool call arguments not JSON",
        {"messages": assistant(content=None, tool_calls=[call(), call('{"a": ', id="c2")])},
        RVE,
        "messages[0].tool_calls[1].function.arguments",
        "invalid_json",
    ),
    (
        "tool call arguments NaN",
        {"messages": assistant(tool_calls=[call('{"a": NaN}')])},
        RVE,
        "messages[0].tool_calls[0].function.arguments",
        "invalid_json",
    ),
    (
        "tool message without tool_call_id",
        {"messages": [{"role": "tool", "content": "x"}]},
        RVE,
        "messages[0].tool_call_id",
        "missing_field",
    ),
    (
        "tool message answering no call",
        {"messages": [*assistant(tool_calls=[call()]), {"role": "tool", "tool_call_id": "c9", "content": "x"}]},
        RVE,
        "messages[1].tool_call_id",
        "invalid_value",
    ),
    (
        "tool message with an image",
        {
            "messages": [
                *assistant(tool_calls=[call()]),
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}],
                },
            ]
        },
        RVE,
        "messages[1].content[0].type",
        "invalid_value",
    ),
    ("temperature a string", {"temperature": "hot"}, RVE, "temperature", "invalid_type"),
    ("temperature a bool", {"temperature": True}, RVE, "temperature", "invalid_type"),
    ("temperature above 2", {"temperature": 2.01}, RVE, "temperature", "invalid_value"),
    ("temperature below 0", {"temperature": -0.1}, RVE, "temperature", "invalid_value"),
    ("temperature huge integer", {"temperature": 10**400}, RVE, "temperature", "invalid_value"),
    ("top_p above 1", {"top_p": 1.5}, RVE, "top_p", "invalid_value"),
    ("top_k negative", {"top_k": -1}, RVE, "top_k", "invalid_value"),
    ("top_k decimal", {"top_k": 1.5}, RVE, "top_k", "invalid_type"),
    ("min_p above 1", {"min_p": 2}, RVE, "min_p", "invalid_value"),
    ("n above 128", {"n": 129}, RVE, "n", "invalid_value"),
    ("n zero", {"n": 0}, RVE, "n", "invalid_value"),
    ("n a bool", {"n": True}, RVE, "n", "invalid_type"),
    ("max_tokens zero", {"max_tokens": 0}, RVE, "max_tokens", "invalid_value"),
    ("max_tokens decimal", {"max_tokens": 1.0}, RVE, "max_tokens", "invalid_type"),
    ("max_tokens a bool", {"max_tokens": True}, RVE, "max_tokens", "invalid_type"),
    ("max_completion_tokens zero", {"max_completion_tokens": 0}, RVE, "max_completion_tokens", "invalid_value"),
    (
        "token limits disagree",
        {"max_tokens": 10, "max_completion_tokens": 20},
        RVE,
        "max_completion_tokens",
        "invalid_value",
    ),
    ("stop a number", {"stop": 5}, RVE, "stop", "invalid_type"),
    ("stop five sequences", {"stop": ["a", "b", "c", "d", "e"]}, RVE, "stop", "invalid_value"),
    ("stop item a number", {"stop": ["a", 1]}, RVE, "stop[1]", "invalid_type"),
    ("stop empty string", {"stop": ""}, RVE, "stop", "invalid_value"),
    ("stop item empty", {"stop": ["a", ""]}, RVE, "stop[1]", "invalid_value"),
    ("seed a string", {"seed": "1"}, RVE, "seed", "invalid_type"),
    ("seed decimal", {"seed": 1.5}, RVE, "seed", "invalid_type"),
    ("seed a bool", {"seed": False}, RVE, "seed", "invalid_type"),
    ("seed beyond int64", {"seed": 2**63}, RVE, "seed", "invalid_value"),
    ("presence_penalty above 2", {"presence_penalty": 3}, RVE, "presence_penalty", "invalid_value"),
    ("frequency_penalty below -2", {"frequency_penalty": -2.5}, RVE, "frequency_penalty", "invalid_value"),
    ("logit_bias an array", {"logit_bias": []}, RVE, "logit_bias", "invalid_type"),
    ("logit_bias key not a token id", {"logit_bias": {"abc": 1}}, RVE, "logit_bias.abc", "invalid_value"),
    ("logit_bias out of range", {"logit_bias": {"1": 101}}, RVE, "logit_bias.1", "invalid_value"),
    ("logit_bias value a string", {"logit_bias": {"1": "x"}}, RVE, "logit_bias.1", "invalid_type"),
    ("logprobs a string", {"logprobs": "yes"}, RVE, "logprobs", "invalid_type"),
    ("top_logprobs without logprobs", {"top_logprobs": 5}, RVE, "top_logprobs", "invalid_value"),
    ("top_logprobs above 20", {"top_logprobs": 21}, RVE, "top_logprobs", "invalid_value"),
    ("user a number", {"user": 5}, RVE, "user", "invalid_type"),
    ("stream a string", {"stream": "yes"}, RVE, "stream", "invalid_type"),
    ("stream_options an array", {"stream": True, "stream_options": []}, RVE, "stream_options", "invalid_type"),
    (
        "include_usage a string",
        {"stream": True, "stream_options": {"include_usage": "y"}},
        RVE,
        "stream_options.include_usage",
        "invalid_type",
    ),
    (
        "include_obfuscation a number",
        {"stream": True, "stream_options": {"include_obfuscation": 1}},
        RVE,
        "stream_options.include_obfuscation",
        "invalid_type",
    ),
    ("modalities audio", {"modalities": ["text", "audio"]}, UNS, "modalities[1]", "unsupported_parameter"),
    ("modalities unknown", {"modalities": ["video"]}, RVE, "modalities[0]", "invalid_value"),
    ("modalities a string", {"modalities": "text"}, RVE, "modalities", "invalid_type"),
    ("modalities item a number", {"modalities": [1]}, RVE, "modalities[0]", "invalid_type"),
    ("tools an object", {"tools": {}}, RVE, "tools", "invalid_type"),
    ("tools empty", {"tools": []}, RVE, "tools", "invalid_value"),
    ("tool not an object", {"tools": [5]}, RVE, "tools[0]", "invalid_type"),
    ("tool type missing", {"tools": [{"function": {"name": "f"}}]}, RVE, "tools[0].type", "missing_field"),
    (
        "tool custom",
        {"tools": [{"type": "custom", "custom": {"name": "c"}}]},
        UNS,
        "tools[0].type",
        "unsupported_parameter",
    ),
    ("tool type unknown", {"tools": [{"type": "retrieval"}]}, RVE, "tools[0].type", "invalid_value"),
    ("tool function missing", {"tools": [{"type": "function"}]}, RVE, "tools[0].function", "missing_field"),
    (
        "tool name missing",
        {"tools": [{"type": "function", "function": {}}]},
        RVE,
        "tools[0].function.name",
        "missing_field",
    ),
    (
        "tool name with a space",
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        RVE,
        "tools[0].function.name",
        "invalid_value",
    ),
    (
        "tool name too long",
        {"tools": [{"type": "function", "function": {"name": "a" * 65}}]},
        RVE,
        "tools[0].function.name",
        "invalid_value",
    ),
    (
        "tool name with a trailing newline",
        {"tools": [{"type": "function", "function": {"name": "f\n"}}]},
        RVE,
        "tools[0].function.name",
        "invalid_value",
    ),
    ("tool names repeated", {"tools": [TOOL, TOOL]}, RVE, "tools[1].function.name", "invalid_value"),
    (
        "tool parameters an array",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
        RVE,
        "tools[0].function.parameters",
        "invalid_type",
    ),
    (
        "tool parameters of type string",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
        RVE,
        "tools[0].function.parameters",
        "invalid_value",
    ),
    (
        "tool parameters of a list of types",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": ["object", "null"]}}}]},
        RVE,
        "tools[0].function.parameters",
        "invalid_value",
    ),
    (
        "tool description a number",
        {"tools": [{"type": "function", "function": {"name": "f", "description": 5}}]},
        RVE,
        "tools[0].function.description",
        "invalid_type",
    ),
    (
        "tool strict a string",
        {"tools": [{"type": "function", "function": {"name": "f", "strict": "y"}}]},
        RVE,
        "tools[0].function.strict",
        "invalid_type",
    ),
    ("tool_choice unknown", {"tools": [TOOL], "tool_choice": "always"}, RVE, "tool_choice", "invalid_value"),
    ("tool_choice a number", {"tools": [TOOL], "tool_choice": 5}, RVE, "tool_choice", "invalid_type"),
    ("tool_choice required without tools", {"tool_choice": "required"}, RVE, "tool_choice", "invalid_value"),
    ("tool_choice type missing", {"tools": [TOOL], "tool_choice": {}}, RVE, "tool_choice.type", "missing_field"),
    (
        "tool_choice allowed_tools",
        {
            "tools": [TOOL],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        },
        UNS,
        "tool_choice.type",
        "unsupported_parameter",
    ),
    (
        "tool_choice custom",
        {"tools": [TOOL], "tool_choice": {"type": "custom", "custom": {"name": "f"}}},
        UNS,
        "tool_choice.type",
        "unsupported_parameter",
    ),
    (
        "tool_choice type unknown",
        {"tools": [TOOL], "tool_choice": {"type": "x"}},
        RVE,
        "tool_choice.type",
        "invalid_value",
    ),
    (
        "tool_choice function missing",
        {"tools": [TOOL], "tool_choice": {"type": "function"}},
        RVE,
        "tool_choice.function",
        "missing_field",
    ),
    (
        "tool_choice names an unknown tool",
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
        RVE,
        "tool_choice.function.name",
        "invalid_value",
    ),
    (
        "tool_choice names a tool without tools",
        {"tool_choice": {"type": "function", "function": {"name": "f"}}},
        RVE,
        "tool_choice.function.name",
        "invalid_value",
    ),
    ("response_format a string", {"response_format": "json"}, RVE, "response_format", "invalid_type"),
    ("response_format type missing", {"response_format": {}}, RVE, "response_format.type", "missing_field"),
    (
        "response_format unknown",
        {"response_format": {"type": "yaml"}},
        RVE,
        "response_format.type",
        "invalid_value",
    ),
    (
        "json_schema missing",
        {"response_format": {"type": "json_schema"}},
        RVE,
        "response_format.json_schema",
        "missing_field",
    ),
    (
        "json_schema name missing",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        RVE,
        "response_format.json_schema.name",
        "missing_field",
    ),
    (
        "json_schema name invalid",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}},
        RVE,
        "response_format.json_schema.name",
        "invalid_value",
    ),
    (
        "json_schema schema missing",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a"}}},
        RVE,
        "response_format.json_schema.schema",
        "missing_field",
    ),
    (
        "json_schema schema an array",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": []}}},
        RVE,
        "response_format.json_schema.schema",
        "invalid_type",
    ),
    (
        "json_schema strict a string",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "strict": "y"}}},
        RVE,
        "response_format.json_schema.strict",
        "invalid_type",
    ),
    (
        "json_schema description a number",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "description": 1}}},
        RVE,
        "response_format.json_schema.description",
        "invalid_type",
    ),
]


def body_with(overrides: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not DROP}


@pytest.mark.parametrize(
    ("overrides", "error", "param", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_body_is_a_400_naming_the_field(
    overrides: dict[str, Any], error: type[RVE], param: str | None, code: str
) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body_with(overrides))
    assert type(info.value) is error
    assert (info.value.param, info.value.code, info.value.http_status) == (param, code, 400)
    if param is not None:
        assert (
            f"'{param}'" in info.value.message
            or info.value.code in ("invalid_image_url", "invalid_json")
            or (error is UNS)
        )


@pytest.mark.parametrize("body", [[], "x", 1, None, True], ids=repr)
def test_body_must_be_an_object(body: object) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body)
    assert (info.value.param, info.value.code) == (None, "invalid_type")


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_FIELDS))
def test_unsupported_fields_are_refused_when_set(name: str) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        parse_chat_request(body_with({name: {"any": "value"}}))
    assert info.value.param == name
    assert parse_chat_request(body_with({name: None})) == parse_chat_request(body_with({}))


WRONG_KIND = {"string": 5, "boolean": "yes", "object": ["a"]}


@pytest.mark.parametrize("name", sorted(IGNORED_FIELDS))
def test_ignored_fields_are_still_type_checked(name: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body_with({name: WRONG_KIND[IGNORED_FIELDS[name]]}))
    assert (info.value.param, info.value.code) == (name, "invalid_type")


def test_messages_read_like_openai_and_render_as_its_error_body() -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body_with({"temperature": "hot"}))
    assert info.value.message == "Invalid type for 'temperature': expected a number, but got a string instead."
    status, headers, body = render_error(info.value, "req-1")
    assert (status, headers) == (400, [])
    assert body == {
        "error": {
            "message": "Invalid type for 'temperature': expected a number, but got a string instead.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_type",
        }
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model": DROP}, "Missing required parameter: 'model'."),
        ({"temperature": 3}, "Invalid value for 'temperature': expected a value between 0 and 2."),
        ({"max_tokens": 0}, "Invalid value for 'max_tokens': expected a value greater than or equal to 1."),
        (
            {"tools": [TOOL, TOOL]},
            "Invalid value for 'tools[1].function.name': tool names must be unique; 'f' is given twice.",
        ),
        ({"n": 200}, "Invalid value for 'n': expected a value between 1 and 128."),
        (
            {"seed": None, "stream": 1},
            "Invalid type for 'stream': expected a boolean, but got an integer instead.",
        ),
        (
            {"stop": {}},
            "Invalid type for 'stop': expected a string or an array of strings, but got an object instead.",
        ),
        (
            {"messages": [{"role": "user", "content": 1.5}]},
            "Invalid type for 'messages[0].content': expected a string or an array of content parts, "
            "but got a decimal number instead.",
        ),
        (
            {"messages": [{"role": "user", "content": [[]]}]},
            "Invalid type for 'messages[0].content[0]': expected an object, but got an array instead.",
        ),
        (
            {"messages": [{"role": "assistant", "content": None}]},
            "Invalid type for 'messages[0].content': expected a string or an array of content parts, "
            "but got null instead.",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://h/a.png"}}]}
                ]
            },
            "Invalid image URL: remote URLs are not fetched by this server; send the image inline as a base64 "
            "data: URL (data:image/png;base64,...).",
        ),
    ],
    ids=[
        "missing",
        "range",
        "minimum",
        "duplicate",
        "n",
        "bool",
        "stop",
        "decimal",
        "array",
        "null",
        "remote url",
    ],
)
def test_error_messages(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body_with(overrides))
    assert info.value.message == expected
