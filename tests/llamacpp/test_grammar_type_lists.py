"""Type lists in schemas for the llama.cpp grammar: ``{"type": ["string", "null"], "maxLength": 8}`` is enforced
as the anyOf of its types, each with its own keywords (the converter alone keeps the types and drops the rest),
and a refusal still names the place in the client's own schema. No model needed: these check the grammar text;
tests/llamacpp/test_structured_output.py samples from such a grammar on the real model."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.errors import InvalidRequest
from adapters.llamacpp.grammar import SUPPORTED_KEYWORDS, check_schema, schema_to_gbnf, tool_call_gbnf
from adapters.llamacpp.options import GrammarLimits
from adapters.types import ToolSpec

LIMITS = GrammarLimits()


def rules(gbnf: str) -> dict[str, str]:
    return dict(line.split(" ::= ", 1) for line in gbnf.splitlines())


def test_an_optional_bounded_integer_is_the_bounded_rule_or_null() -> None:
    gbnf = rules(schema_to_gbnf({"type": ["integer", "null"], "minimum": 1, "maximum": 5}, LIMITS, "p"))
    first, second = gbnf["root"].split(" | ")
    assert (gbnf[first], second) == ("[1-5] space", "null")
    assert gbnf["null"] == '"null" space'


def test_an_optional_string_keeps_its_length_inside_an_object_and_a_tool_call() -> None:
    nick = {"type": ["string", "null"], "maxLength": 3, "description": "a nickname"}
    schema = {"type": "object", "properties": {"nick": nick}, "required": ["nick"], "additionalProperties": False}
    for gbnf in (
        rules(schema_to_gbnf(schema, LIMITS, "response_format")),
        rules(tool_call_gbnf([ToolSpec("f", "", schema)], LIMITS)),
    ):
        (name,) = [rule for rule, body in gbnf.items() if body.endswith("-0 | null")]
        assert gbnf[gbnf[name].split(" | ")[0]] == '"\\"" (char (char (char)?)?)? "\\"" space'


def test_enum_values_of_no_listed_type_are_dropped() -> None:
    gbnf = rules(schema_to_gbnf({"type": ["string", "null"], "enum": ["a", None, 3, True]}, LIMITS, "p"))
    assert gbnf["root"] == '"\\"a\\"" | "null"'


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        (
            {"type": "object", "properties": {"a": {"type": ["string", "null"], "maxLength": 5000}}},
            "#/properties/a/maxLength is 5000",
        ),
        ({"type": ["integer", "null"], "multipleOf": 2}, "'multipleOf' (at #) cannot be enforced"),
        ({"type": ["string", "null"], "minLength": 1, "pattern": "^a$"}, "#: minLength/maxLength need"),
        ({"type": ["string", "null"], "anyOf": [{"type": "string"}]}, "# combines 'anyOf' with 'type'"),
        ({"type": ["string", "null"], "enum": [1, 2]}, "#: no enum value is of the listed types"),
        ({"type": ["string", 5]}, "#/type must be a type name or a non-empty list"),
        ({"type": ["object", "null"], "$defs": {"d": {"not": {}}}}, "'not' (at #/$defs/d) cannot be enforced"),
    ],
)
def test_what_a_branch_cannot_enforce_is_a_400_naming_the_clients_own_path(
    schema: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_schema(schema, LIMITS, "response_format")
    assert fragment in info.value.message
    assert info.value.param == "response_format"
    if "cannot be enforced" in fragment:
        assert info.value.message.endswith("supported: " + ", ".join(SUPPORTED_KEYWORDS))
