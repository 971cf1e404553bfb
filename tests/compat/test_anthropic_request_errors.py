"""Invalid or unsupported Messages bodies -> the exact 400 a client gets: error class, field path and code."""

from __future__ import annotations

from typing import Any

import pytest

from compat.anthropic.errors import render_anthropic_error
from compat.anthropic.request import (
    IGNORED_FIELDS,
    UNSUPPORTED_FIELDS,
    parse_count_tokens_request,
    parse_messages_request,
)
from compat.errors import RequestValidationError, UnsupportedParameter

RVE = RequestValidationError
UNS = UnsupportedParameter
DROP = object()  # marks a key to remove from the base body
TOOL = {"name": "f", "input_schema": {"type": "object"}}
USE = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


def after_call(*result_blocks: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": "go"}, {"role": "assistant", "content": [USE]}, *user(list(result_blocks))]


def image(**source: Any) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk=", **source}}


# (id, overrides of {"model": "m", "max_tokens": 64, "messages": [user "hi"]}, class, param, code)
CASES: list[tuple[str, dict[str, Any], type[RVE], str | None, str]] = [
    ("model missing", {"model": DROP}, RVE, "model", "missing_field"),
    ("model empty", {"model": ""}, RVE, "model", "invalid_value"),
    ("max_tokens missing", {"max_tokens": DROP}, RVE, "max_tokens", "missing_field"),
    ("max_tokens zero", {"max_tokens": 0}, RVE, "max_tokens", "invalid_value"),
    ("max_tokens a string", {"max_tokens": "5"}, RVE, "max_tokens", "invalid_type"),
    ("messages missing", {"messages": DROP}, RVE, "messages", "missing_field"),
    ("messages empty", {"messages": []}, RVE, "messages", "invalid_value"),
    ("message not an object", {"messages": ["hi"]}, RVE, "messages[0]", "invalid_type"),
    ("role missing", {"messages": [{"content": "x"}]}, RVE, "messages[0].role", "missing_field"),
    ("role system", {"messages": [{"role": "system", "content": "x"}]}, RVE, "messages[0].role", "invalid_value"),
    ("content missing", {"messages": [{"role": "user"}]}, RVE, "messages[0].content", "missing_field"),
    ("content a number", {"messages": user(5)}, RVE, "messages[0].content", "invalid_type"),
    ("content empty", {"messages": user([])}, RVE, "messages[0].content", "invalid_value"),
    ("block not an object", {"messages": user(["x"])}, RVE, "messages[0].content[0]", "invalid_type"),
    (
        "block type missing",
        {"messages": user([{"text": "x"}])},
        RVE,
        "messages[0].content[0].type",
        "missing_field",
    ),
    (
        "block type unknown",
        {"messages": user([{"type": "video"}])},
        RVE,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "tool_use in a user turn",
        {"messages": user([USE])},
        RVE,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "document block",
        {"messages": user([{"type": "document", "source": {}}])},
        UNS,
        "messages[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "server tool block in an assistant turn",
        {"messages": [{"role": "assistant", "content": [{"type": "server_tool_use"}]}]},
        UNS,
        "messages[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "cache_control not an object",
        {"messages": user([{"type": "text", "text": "x", "cache_control": "yes"}])},
        RVE,
        "messages[0].content[0].cache_control",
        "invalid_type",
    ),
    ("text missing", {"messages": user([{"type": "text"}])}, RVE, "messages[0].content[0].text", "missing_field"),
    (
        "image source missing",
        {"messages": user([{"type": "image"}])},
        RVE,
        "messages[0].content[0].source",
        "missing_field",
    ),
    (
        "image url source",
        {"messages": user([{"type": "image", "source": {"type": "url", "url": "http://169.254.169.254/"}}])},
        UNS,
        "messages[0].content[0].source.type",
        "unsupported_parameter",
    ),
    (
        "image file source",
        {"messages": user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])},
        UNS,
        "messages[0].content[0].source.type",
        "unsupported_parameter",
    ),
    (
        "image source type unknown",
        {"messages": user([image(type="inline")])},
        RVE,
        "messages[0].content[0].source.type",
        "invalid_value",
    ),
    (
        "image media type",
        {"messages": user([image(media_type="image/bmp")])},
        RVE,
        "messages[0].content[0].source.media_type",
        "invalid_value",
    ),
    (
        "image data not base64",
        {"messages": user([image(data="not base64!")])},
        RVE,
        "messages[0].content[0].source.data",
        "invalid_value",
    ),
    (
        "image data empty",
        {"messages": user([image(data="")])},
        RVE,
        "messages[0].content[0].source.data",
        "invalid_value",
    ),
    (
        "tool_use input not an object",
        {"messages": [{"role": "assistant", "content": [{**USE, "input": "{}"}]}]},
        RVE,
        "messages[0].content[0].input",
        "invalid_type",
    ),
    (
        "tool_use id empty",
        {"messages": [{"role": "assistant", "content": [{**USE, "id": ""}]}]},
        RVE,
        "messages[0].content[0].id",
        "invalid_value",
    ),
    (
        "thinking text missing",
        {"messages": [{"role": "assistant", "content": [{"type": "thinking", "signature": "s"}]}]},
        RVE,
        "messages[0].content[0].thinking",
        "missing_field",
    ),
    (
        "redacted thinking data missing",
        {"messages": [{"role": "assistant", "content": [{"type": "redacted_thinking"}]}]},
        RVE,
        "messages[0].content[0].data",
        "missing_field",
    ),
    (
        "tool_result answers nothing",
        {"messages": user([{"type": "tool_result", "tool_use_id": "nope"}])},
        RVE,
        "messages[0].content[0].tool_use_id",
        "invalid_value",
    ),
    (
        "tool_result content a number",
        {"messages": after_call({"type": "tool_result", "tool_use_id": "t1", "content": 3})},
        RVE,
        "messages[2].content[0].content",
        "invalid_type",
    ),
    (
        "tool_result with an image",
        {"messages": after_call({"type": "tool_result", "tool_use_id": "t1", "content": [image()]})},
        UNS,
        "messages[2].content[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "tool_result with a document",
        {"messages": after_call({"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "document"}]})},
        UNS,
        "messages[2].content[0].content[0].type",
        "unsupported_parameter",
    ),
    (
        "tool_result is_error not a boolean",
        {"messages": after_call({"type": "tool_result", "tool_use_id": "t1", "is_error": "yes"})},
        RVE,
        "messages[2].content[0].is_error",
        "invalid_type",
    ),
    ("system a number", {"system": 3}, RVE, "system", "invalid_type"),
    ("system block not text", {"system": [{"type": "image"}]}, RVE, "system[0].type", "invalid_value"),
    ("system block text missing", {"system": [{"type": "text"}]}, RVE, "system[0].text", "missing_field"),
    ("tools not a list", {"tools": {}}, RVE, "tools", "invalid_type"),
    ("tool not an object", {"tools": ["f"]}, RVE, "tools[0]", "invalid_type"),
    (
        "server tool",
        {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
        UNS,
        "tools[0].type",
        "unsupported_parameter",
    ),
    (
        "tool name missing",
        {"tools": [{"input_schema": {"type": "object"}}]},
        RVE,
        "tools[0].name",
        "missing_field",
    ),
    ("tool name invalid", {"tools": [{**TOOL, "name": "a b"}]}, RVE, "tools[0].name", "invalid_value"),
    ("tool names repeated", {"tools": [TOOL, TOOL]}, RVE, "tools[1].name", "invalid_value"),
    ("input_schema missing", {"tools": [{"name": "f"}]}, RVE, "tools[0].input_schema", "missing_field"),
    (
        "input_schema not an object schema",
        {"tools": [{"name": "f", "input_schema": {"type": "array"}}]},
        RVE,
        "tools[0].input_schema.type",
        "invalid_value",
    ),
    (
        "input_schema property type unknown",
        {"tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"city": {"type": "text"}}}}]},
        RVE,
        "tools[0].input_schema.properties.city.type",
        "invalid_value",
    ),
    (
        "input_schema required not names",
        {"tools": [{"name": "f", "input_schema": {"type": "object", "required": "city"}}]},
        RVE,
        "tools[0].input_schema.required",
        "invalid_value",
    ),
    (
        "input_schema $ref outside the schema",
        {"tools": [{"name": "f", "input_schema": {"type": "object", "$ref": "https://example.com/s.json"}}]},
        RVE,
        "tools[0].input_schema.$ref",
        "invalid_value",
    ),
    ("tool_choice a string", {"tool_choice": "auto"}, RVE, "tool_choice", "invalid_type"),
    ("tool_choice type missing", {"tool_choice": {}}, RVE, "tool_choice.type", "missing_field"),
    ("tool_choice type unknown", {"tool_choice": {"type": "required"}}, RVE, "tool_choice.type", "invalid_value"),
    ("tool_choice any without tools", {"tool_choice": {"type": "any"}}, RVE, "tool_choice.type", "invalid_value"),
    (
        "tool_choice tool without name",
        {"tools": [TOOL], "tool_choice": {"type": "tool"}},
        RVE,
        "tool_choice.name",
        "missing_field",
    ),
    (
        "tool_choice tool not offered",
        {"tools": [TOOL], "tool_choice": {"type": "tool", "name": "g"}},
        RVE,
        "tool_choice.name",
        "invalid_value",
    ),
    (
        "disable_parallel_tool_use not a boolean",
        {"tools": [TOOL], "tool_choice": {"type": "auto", "disable_parallel_tool_use": 1}},
        RVE,
        "tool_choice.disable_parallel_tool_use",
        "invalid_type",
    ),
    ("temperature above 1", {"temperature": 1.5}, RVE, "temperature", "invalid_value"),
    ("top_p a string", {"top_p": "1"}, RVE, "top_p", "invalid_type"),
    ("top_k negative", {"top_k": -1}, RVE, "top_k", "invalid_value"),
    ("stop_sequences a string", {"stop_sequences": "END"}, RVE, "stop_sequences", "invalid_type"),
    ("stop sequence empty", {"stop_sequences": ["a", ""]}, RVE, "stop_sequences[1]", "invalid_value"),
    ("stream a string", {"stream": "true"}, RVE, "stream", "invalid_type"),
    ("metadata a string", {"metadata": "u"}, RVE, "metadata", "invalid_type"),
    ("metadata user_id a number", {"metadata": {"user_id": 5}}, RVE, "metadata.user_id", "invalid_type"),
    ("thinking a string", {"thinking": "on"}, RVE, "thinking", "invalid_type"),
    ("thinking type missing", {"thinking": {}}, RVE, "thinking.type", "missing_field"),
    ("thinking type unknown", {"thinking": {"type": "on"}}, RVE, "thinking.type", "invalid_value"),
    ("thinking budget missing", {"thinking": {"type": "enabled"}}, RVE, "thinking.budget_tokens", "missing_field"),
    (
        "thinking budget too small",
        {"thinking": {"type": "enabled", "budget_tokens": 100}},
        RVE,
        "thinking.budget_tokens",
        "invalid_value",
    ),
    (
        "thinking budget not below max_tokens",
        {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
        RVE,
        "thinking.budget_tokens",
        "invalid_value",
    ),
    ("output_config a string", {"output_config": "json"}, RVE, "output_config", "invalid_type"),
    (
        "output_config.format type",
        {"output_config": {"format": {"type": "json_object"}}},
        RVE,
        "output_config.format.type",
        "invalid_value",
    ),
    (
        "output_format schema missing",
        {"output_format": {"type": "json_schema"}},
        RVE,
        "output_format.schema",
        "missing_field",
    ),
    (
        "output_format schema malformed",
        {"output_format": {"type": "json_schema", "schema": {"type": "object", "properties": []}}},
        RVE,
        "output_format.schema.properties",
        "invalid_type",
    ),
    (
        "output_config.format schema malformed",
        {"output_config": {"format": {"type": "json_schema", "schema": {"enum": []}}}},
        RVE,
        "output_config.format.schema.enum",
        "invalid_value",
    ),
    ("mcp_servers", {"mcp_servers": [{"type": "url"}]}, UNS, "mcp_servers", "unsupported_parameter"),
    ("container", {"container": "c1"}, UNS, "container", "unsupported_parameter"),
    ("service_tier a number", {"service_tier": 1}, RVE, "service_tier", "invalid_type"),
    ("context_management a list", {"context_management": []}, RVE, "context_management", "invalid_type"),
]


def build(overrides: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {"model": "m", "max_tokens": 64, "messages": user("hi")}
    for key, value in overrides.items():
        if value is DROP:
            raw.pop(key)
        else:
            raw[key] = value
    return raw


@pytest.mark.parametrize(("overrides", "cls", "param", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_body_is_a_400_naming_the_field(
    overrides: dict[str, Any], cls: type[RVE], param: str | None, code: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_messages_request(build(overrides))
    assert type(caught.value) is cls
    assert (caught.value.param, caught.value.code) == (param, code)
    status, _, rendered = render_anthropic_error(caught.value)
    assert status == 400
    assert rendered["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("raw", [[], "x", None, 3])
def test_body_not_an_object(raw: Any) -> None:
    with pytest.raises(RequestValidationError, match="must be a JSON object"):
        parse_messages_request(raw)
    with pytest.raises(RequestValidationError, match="must be a JSON object"):
        parse_count_tokens_request(raw)


def test_count_tokens_checks_the_same_fields() -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_count_tokens_request({"model": "m", "messages": user([{"type": "document"}])})
    assert caught.value.param == "messages[0].content[0].type"
    with pytest.raises(RequestValidationError) as thinking:
        parse_count_tokens_request({"model": "m", "messages": user("hi"), "thinking": {"type": "enabled"}})
    assert thinking.value.param == "thinking.budget_tokens"


def test_field_tables_do_not_overlap() -> None:
    assert not set(UNSUPPORTED_FIELDS) & set(IGNORED_FIELDS)
