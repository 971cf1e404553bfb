"""`compat.schema.check_schema`: well-formed schemas pass unchanged, malformed ones are 400s naming the place.

Both directions through the chat parser too: a bad schema in ``response_format`` or in a tool's ``parameters``
is refused with the full request path, before any backend sees it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat.errors import RequestValidationError
from compat.openai.chat_request import parse_chat_request
from compat.schema import KEYWORD_KINDS, check_schema, name_path

WELL_FORMED: list[dict[str, Any]] = [
    {},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": True, "c": False}, "required": ["a"]},
    {"type": ["string", "null"], "minLength": 0, "maxLength": 3, "pattern": "^a$", "format": "date"},
    {"type": "integer", "minimum": -1, "maximum": 5.5, "exclusiveMinimum": 0, "exclusiveMaximum": 9,
     "multipleOf": 0.5},
    {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 2, "uniqueItems": True},
    {"type": "array", "items": [{"type": "number"}], "additionalItems": False},
    {"prefixItems": [{"const": 1}], "contains": {"enum": [1, "x", None]}, "minContains": 1, "maxContains": 3},
    {"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"type": "string"}}},
    {"allOf": [{"$ref": "#/definitions/a~1b"}], "definitions": {"a/b": {"oneOf": [{"not": {}}]}}},
    {"$ref": "#/properties/x/items/0", "properties": {"x": {"items": [{"type": "null"}]}}},
    {"properties": {"self": {"$ref": "#"}}},
    {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a%20"}, "a ": {}}},
    {"if": {}, "then": {}, "else": {}, "dependentSchemas": {"a": {}}, "dependentRequired": {"a": ["b"]}},
    {"dependencies": {"a": ["b"], "c": {"type": "object"}}, "patternProperties": {"^x": {}}},
    {"propertyNames": {"maxLength": 3}, "unevaluatedProperties": False, "unevaluatedItems": True},
    {"minProperties": 0, "maxProperties": 2, "examples": [1], "default": {"x": 1}, "const": [1, {"a": None}]},
    {"title": "t", "description": "d", "$comment": "c", "$schema": "s", "$id": "i", "deprecated": False,
     "x-vendor": {"required": 5}},
]  # fmt: skip


@pytest.mark.parametrize("schema", WELL_FORMED)
def test_well_formed_schemas_pass_unchanged(schema: dict[str, Any]) -> None:
    assert check_schema(schema, "s") is schema


MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("required a number", {"required": 5}, "s.required", "array of property names"),
    ("required holds a number", {"required": ["a", 1]}, "s.required", "array of property names"),
    ("properties an array", {"properties": []}, "s.properties", "an object of JSON schemas"),
    ("property a number", {"properties": {"a": 5}}, "s.properties.a", "a JSON schema"),
    ("odd property name", {"properties": {"a.b c": "x"}}, 's.properties["a.b c"]', "a JSON schema"),
    ("empty enum", {"enum": []}, "s.enum", "at least 1 value"),
    ("enum an object", {"enum": {}}, "s.enum", "an array"),
    ("type a number", {"type": 5}, "s.type", "expected one of array, boolean"),
    ("unknown type", {"type": "str"}, "s.type", "expected one of"),
    ("empty type list", {"type": []}, "s.type", "non-empty array"),
    ("type list with an object", {"type": [{}]}, "s.type", "expected one of"),
    ("type twice", {"type": ["null", "null"]}, "s.type", "listed twice"),
    ("anyOf a string", {"anyOf": "xy"}, "s.anyOf", "an array of JSON schemas"),
    ("empty oneOf", {"oneOf": []}, "s.oneOf", "at least 1 schema"),
    ("allOf item a string", {"allOf": [{}, "x"]}, "s.allOf[1]", "a JSON schema"),
    ("items a number", {"items": 3}, "s.items", "a JSON schema"),
    ("empty items list", {"items": []}, "s.items", "at least 1 schema"),
    ("nested not", {"not": {"properties": {"a": {"minLength": -1}}}}, "s.not.properties.a.minLength",
     "non-negative integer"),
    ("maxItems a float", {"maxItems": 1.0}, "s.maxItems", "non-negative integer"),
    ("minLength a bool", {"minLength": True}, "s.minLength", "non-negative integer"),
    ("minimum a string", {"minimum": "1"}, "s.minimum", "a number"),
    ("exclusiveMinimum draft 4", {"exclusiveMinimum": True}, "s.exclusiveMinimum", "a number"),
    ("multipleOf zero", {"multipleOf": 0}, "s.multipleOf", "greater than 0"),
    ("multipleOf a string", {"multipleOf": "2"}, "s.multipleOf", "a number"),
    ("pattern a number", {"pattern": 1}, "s.pattern", "a string"),
    ("format a list", {"format": ["date"]}, "s.format", "a string"),
    ("uniqueItems a string", {"uniqueItems": "yes"}, "s.uniqueItems", "a boolean"),
    ("dependentRequired an array", {"dependentRequired": []}, "s.dependentRequired", "an object of arrays"),
    ("dependentRequired names", {"dependentRequired": {"a": [1]}}, "s.dependentRequired.a", "property names"),
    ("dependencies an array", {"dependencies": []}, "s.dependencies", "an object"),
    ("dependencies bad schema", {"dependencies": {"a": 1}}, "s.dependencies.a", "a JSON schema"),
    ("examples an object", {"examples": {}}, "s.examples", "an array"),
    ("$ref a number", {"$ref": 1}, "s.$ref", "a string"),
    ("remote $ref", {"$ref": "https://example.com/s.json"}, "s.$ref", "only references inside"),
    ("anchor $ref", {"$ref": "#a"}, "s.$ref", "only references inside"),
    ("dangling $ref", {"$ref": "#/$defs/a"}, "s.$ref", "points at nothing"),
    ("dangling index", {"$ref": "#/anyOf/1", "anyOf": [{}]}, "s.$ref", "points at nothing"),
    ("index into an object", {"$ref": "#/x/0", "x": {"a": {}}}, "s.$ref", "points at nothing"),
    ("$ref at a string", {"$ref": "#/title", "title": "t"}, "s.$ref", "a JSON schema"),
    ("$ref at a bad schema", {"$ref": "#/x", "x": {"required": 1}}, "s.$ref.required", "property names"),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "param", "needle"), [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])  # fmt: skip
def test_malformed_schemas_name_the_place(schema: dict[str, Any], param: str, needle: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        check_schema(schema, "s")
    assert info.value.param == param
    assert info.value.http_status == 400
    assert needle in info.value.message
    assert f"'{param}'" in info.value.message


def test_long_and_odd_property_names_are_quoted_and_capped() -> None:
    assert name_path("p", "name_1-$") == "p.name_1-$"
    assert name_path("p", "") == 'p[""]'
    assert name_path("p", "x" * 100) == f'p["{"x" * 64}"]'
    assert name_path("p", 'a"\n') == 'p["a\\"\\n"]'


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_a_bad_response_format_schema_is_refused_with_its_request_path() -> None:
    schema = {"properties": {"a": {"type": 5}}}
    body = _chat(response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(body)
    assert info.value.param == "response_format.json_schema.schema.properties.a.type"


def test_a_bad_tool_parameters_schema_is_refused_with_its_request_path() -> None:
    tools = [
        {"type": "function", "function": {"name": "ok", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "required": 5}}},
    ]
    with pytest.raises(RequestValidationError) as info:
        parse_chat_request(_chat(tools=tools))
    assert info.value.param == "tools[1].function.parameters.required"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_infinity=False, allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from([*KEYWORD_KINDS, "x", "0"]), children, max_size=4)
    ),
    max_leaves=15,
)


@given(json_values)
def test_any_json_object_is_accepted_as_is_or_refused_with_a_path(value: object) -> None:
    schema = value if isinstance(value, dict) else {"items": value}
    try:
        assert check_schema(schema, "s") is schema
    except RequestValidationError as exc:
        assert exc.param is not None and exc.param.startswith("s.")
