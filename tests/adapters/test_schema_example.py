"""`adapters.schema_example`: the mock's value for a schema validates against it, or the mock says it has none.

And through the mock backend: a schema with no value is an `InvalidRequest` (400, naming the schema), never a
crash, and a hypothesis sweep over well-formed schemas never gets anything but a strict-JSON value or that 400.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import InvalidRequest
from adapters.mock import MockBackend, MockOptions
from adapters.schema_example import MAX_COUNT, NoExample, example, example_arguments
from adapters.types import (
    Done,
    MessageV2,
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    Text,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)
from compat.errors import RequestValidationError
from compat.schema import check_schema

DRAFT_7 = "http://json-schema.org/draft-07/schema#"
VALID: list[dict[str, Any]] = [
    {},
    {"type": "integer", "minimum": 3, "maximum": 9},
    {"type": "integer", "exclusiveMinimum": 3.5},
    {"type": "integer", "maximum": -4.5},
    {"type": "integer", "exclusiveMaximum": -4},
    {"type": "number", "minimum": 0.25, "maximum": 0.75},
    {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    {"type": "number", "minimum": 1e308, "maximum": 1.7e308},
    {"type": "number", "exclusiveMinimum": 1.7976931348623157e308},
    {"type": "integer", "minimum": 10**400},
    {"maximum": 5, "minimum": 2},
    {"type": "string", "minLength": 3},
    {"type": "string", "format": "date-time"},
    {"format": "uuid"},
    {"type": ["null", "boolean"]},
    {"type": "null"},
    {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2},
    {"type": "array", "prefixItems": [{"const": "a"}, {"type": "string"}], "minItems": 3},
    {"$schema": DRAFT_7, "type": "array", "items": [{"const": 1}, {"enum": [2]}]},
    {"minProperties": 2, "required": ["a"], "properties": {"a": {"type": "boolean"}}},
    {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}],
     "properties": {"b": {"type": "string"}}},
    {"allOf": [True, {"type": "string"}]},
    {"anyOf": [{"$ref": "#/$defs/x"}, {"type": "null"}], "$defs": {"x": {"type": "integer", "minimum": 7}}},
    {"$ref": "#/definitions/a~1b%20", "definitions": {"a/b ": {"const": [1, 2]}}},
    {"$schema": DRAFT_7, "$ref": "#/items/0", "items": [{"const": "t"}]},
    {"oneOf": [{"enum": ["z", "y"]}]},
    {"type": "object", "properties": {"tree": {"$ref": "#/$defs/node"}}, "required": ["tree"],
     "$defs": {"node": {"properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}},
]  # fmt: skip


@pytest.mark.parametrize("schema", VALID)
def test_the_example_validates_and_is_strict_json(schema: dict[str, Any]) -> None:
    value = example(schema)
    jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema).validate(value)
    json.dumps(value, allow_nan=False)


NONE: list[tuple[str, object]] = [
    ("false", False),
    ("false property", {"properties": {"a": False}, "required": ["a"]}),
    ("integer between", {"type": "integer", "minimum": 1.2, "maximum": 1.8}),
    ("empty range", {"type": "number", "minimum": 2, "maximum": 1}),
    ("open point", {"type": "number", "exclusiveMinimum": 1, "exclusiveMaximum": 1}),
    ("no float between", {"type": "number", "exclusiveMinimum": 5e-324, "exclusiveMaximum": 1e-323}),
    ("self reference", {"$ref": "#", "type": "object"}),
    ("cycle", {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}),
    ("long string", {"type": "string", "minLength": MAX_COUNT + 1}),
    ("many items", {"type": "array", "minItems": 10**9}),
    ("dangling ref", {"$ref": "#/nowhere"}),
    ("remote ref", {"$ref": "https://example.com"}),
    ("ref through a list by name", {"$ref": "#/x/a", "x": [{}]}),
]


@pytest.mark.parametrize("schema", [case[1] for case in NONE], ids=[case[0] for case in NONE])
def test_a_schema_without_a_value_raises_no_example(schema: object) -> None:
    with pytest.raises(NoExample):
        example(schema)


def test_tool_arguments_are_always_an_object() -> None:
    assert example_arguments({}) == {}
    assert example_arguments({"properties": {"a": {"const": 1}}, "required": ["a"]}) == {"a": 1}
    assert example_arguments({"anyOf": [{"required": ["x"]}]}) == {"x": None}
    with pytest.raises(NoExample, match="does not describe an object"):
        example_arguments({"type": "string"})


def test_a_bare_value_schema_is_null_inside_and_an_object_at_the_root() -> None:
    assert example({"properties": {"a": {}}, "required": ["a"]}) == {"a": None}
    assert example({"description": "anything"}) == {}
    assert example(True) is None


# --- through the mock backend ---------------------------------------------------------------------------


async def _answer(req: ResolvedV2) -> list[object]:
    import trio

    backend = MockBackend(MockOptions())
    await backend.boot()
    send, receive = trio.open_memory_channel[object](0)
    events: list[object] = []
    refused: list[InvalidRequest] = []

    async def produce() -> None:
        async with send:
            try:
                await backend.generate_v2(req, send)  # type: ignore[arg-type]
            except InvalidRequest as exc:
                refused.append(exc)

    # Received while produced: an answer longer than any fixed buffer would otherwise block its producer forever.
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery, receive:
            nursery.start_soon(produce)
            events += [event async for event in receive]
    if refused:
        raise refused[0]
    return events


def _request(**fields: Any) -> ResolvedV2:
    return ResolvedV2("m", (MessageV2(Role.USER, (TextBlock("hi"),)),), **fields)


async def test_the_mock_refuses_a_response_schema_it_has_no_value_for() -> None:
    schema = {"type": "integer", "minimum": 3, "maximum": 2}
    fmt = ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="n", schema=schema)
    with pytest.raises(InvalidRequest) as info:
        await _answer(_request(response_format=fmt))
    assert (info.value.http_status, info.value.param) == (400, "response_format.json_schema.schema")
    assert "no integer lies within" in info.value.message


async def test_the_mock_refuses_tool_parameters_it_has_no_value_for() -> None:
    tools = (ToolSpec("ok"), ToolSpec("bad", parameters={"properties": {"a": False}, "required": ["a"]}))
    with pytest.raises(InvalidRequest) as info:
        await _answer(_request(tools=tools, tool_choice=ToolChoice(ToolChoiceMode.NAMED, "bad")))
    assert info.value.param == "tools[1].function.parameters"


keywords = st.sampled_from(
    ["type", "properties", "required", "items", "prefixItems", "anyOf", "oneOf", "allOf", "enum", "const",
     "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "minItems", "minProperties",
     "$ref", "$defs", "format", "not", "additionalProperties"]
)  # fmt: skip
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean", "#", "#/$defs/a"])
)
names = st.sampled_from(["a", "b", "date"])
schemas = st.recursive(
    leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keywords | names, children, max_size=4),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None)
@given(schemas)
async def test_every_well_formed_schema_gets_strict_json_or_a_400(candidate: object) -> None:
    schema = candidate if isinstance(candidate, dict) else {"items": candidate}
    try:
        check_schema(schema, "response_format.json_schema.schema")
    except RequestValidationError:
        return
    fmt = ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="n", schema=schema)
    try:
        events = await _answer(_request(response_format=fmt))
    except InvalidRequest as exc:
        assert exc.param == "response_format.json_schema.schema"
        return
    assert isinstance(events[-1], Done)
    text = "".join(event.text for event in events if isinstance(event, Text))
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text!r}"))
