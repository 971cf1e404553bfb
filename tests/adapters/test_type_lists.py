"""`adapters.type_lists`: a list of types rewritten as anyOf accepts exactly the documents the original accepts.

The property is checked with ``jsonschema`` (which reads type lists natively) on generated schemas and
documents; the table pins the shapes the backends receive.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.type_lists import NoValueMatches, expand_type_lists, json_types, split_type_list

TYPES = ["string", "number", "integer", "boolean", "array", "object", "null"]


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": ["string"], "maxLength": 3}, {"type": "string", "maxLength": 3}),
        (
            {"type": ["string", "null"], "maxLength": 3, "minimum": 1, "description": "d"},
            {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "description": "d"},
        ),
        (
            {"type": ["integer", "number", "array"], "maximum": 9, "items": {"type": "string"}, "x-vendor": 1},
            {
                "anyOf": [
                    {"type": "integer", "x-vendor": 1, "maximum": 9},
                    {"type": "number", "x-vendor": 1, "maximum": 9},
                    {"type": "array", "x-vendor": 1, "items": {"type": "string"}},
                ]
            },
        ),
        (
            {"type": ["object", "null"], "properties": {"a": {}}, "required": ["a"], "not": {"type": "null"}},
            {
                "anyOf": [
                    {"type": "object", "not": {"type": "null"}, "properties": {"a": {}}, "required": ["a"]},
                    {"type": "null", "not": {"type": "null"}},
                ]
            },
        ),
        ({"type": ["string", "null"], "enum": ["a", None, 3, True]}, {"enum": ["a", None]}),
        ({"type": ["integer"], "enum": [1.0, 1.5, "1"]}, {"enum": [1.0]}),
        ({"type": ["number", "null"], "const": 2, "title": "t"}, {"const": 2, "title": "t"}),
    ],
    ids=["one type", "optional string", "vendor keyword shared", "not shared", "enum", "integral float", "const"],
)
def test_a_node_is_split_into_one_branch_per_type(node: dict[str, Any], expected: dict[str, Any]) -> None:
    assert split_type_list(node).as_schema() == expected


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        ({"type": ["string", "null"], "enum": [1, True]}, "no enum value"),
        ({"type": ["integer"], "const": 1.5}, "const value"),
        ({"type": ["array"], "const": {}}, "const value"),
    ],
)
def test_values_of_no_listed_type_leave_nothing_to_match(node: dict[str, Any], fragment: str) -> None:
    with pytest.raises(NoValueMatches, match=fragment):
        split_type_list(node)


def test_lists_are_expanded_at_every_depth_and_the_original_is_left_alone() -> None:
    optional = {"type": ["string", "null"], "maxLength": 2}
    schema = {
        "type": "object",
        "properties": {"a": optional},
        "additionalProperties": optional,
        "items": [optional],
        "prefixItems": [optional],
        "$defs": {"d": optional},
        "anyOf": [optional],
        "not": True,
        "dependentSchemas": "not a map",
    }
    before = copy.deepcopy(schema)
    expanded = expand_type_lists(schema)
    want = {"anyOf": [{"type": "string", "maxLength": 2}, {"type": "null"}]}
    assert expanded == {
        **schema,
        "properties": {"a": want},
        "additionalProperties": want,
        "items": [want],
        "prefixItems": [want],
        "$defs": {"d": want},
        "anyOf": [want],
    }
    assert schema == before
    assert expand_type_lists({"items": optional}) == {"items": want}
    assert expand_type_lists({"type": [], "items": 5}) == {"type": [], "items": 5}  # left for the checks
    assert expand_type_lists(True) is True


@pytest.mark.parametrize(
    ("value", "types"),
    [(None, {"null"}), (True, {"boolean"}), (3, {"integer", "number"}), (2.0, {"integer", "number"}),
     (2.5, {"number"}), ("s", {"string"}), ([], {"array"}), ({}, {"object"})],
)  # fmt: skip
def test_json_types(value: object, types: set[str]) -> None:
    assert json_types(value) == types


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-20, 20)
    | st.floats(-20, 20, allow_nan=False)
    | st.text(alphabet="ab", max_size=4),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), kids, max_size=2),
    max_leaves=6,
)
#: Documents near the generated keywords' edges, so that a keyword the rewrite lost changes an answer.
documents = st.sampled_from([0, None, "a", "", [], [None], {"a": []}, {"a": [1]}, {}, 1.5]) | json_values
#: Keywords of every type, each with a value that constrains something.
constraints = st.fixed_dictionaries(
    {},
    optional={
        "maxLength": st.integers(0, 3),
        "pattern": st.just("^a"),
        "minimum": st.integers(-5, 5),
        "exclusiveMaximum": st.integers(-5, 5),
        "multipleOf": st.sampled_from([2, 0.5]),
        "maxItems": st.integers(0, 2),
        "items": st.sampled_from([{"type": "string"}, {"type": ["integer", "null"], "maximum": 0}]),
        "required": st.just(["a"]),
        "properties": st.just({"a": {"type": ["boolean", "array"], "minItems": 1}}),
        "additionalProperties": st.booleans(),
        "not": st.sampled_from([{"const": 0}, {"type": "null"}, {"maxLength": 0}, {"maxItems": 0}]),
        "enum": st.lists(json_values, min_size=1, max_size=4),
        "const": json_values,
        "description": st.just("d"),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4, unique=True), constraints, documents)
def test_the_rewrite_accepts_exactly_what_the_type_list_accepts(
    types: list[str], keywords: dict[str, Any], document: object
) -> None:
    schema = {"type": types, **keywords}
    try:
        expanded = expand_type_lists(schema)
    except NoValueMatches:
        assert not jsonschema.Draft202012Validator(schema).is_valid(document)
        return
    assert "type" not in expanded or not isinstance(expanded["type"], list)
    original = jsonschema.Draft202012Validator(schema).is_valid(document)
    assert jsonschema.Draft202012Validator(expanded).is_valid(document) == original
