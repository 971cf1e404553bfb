"""Numeric bounds in grammars, and grammars for any well-formed schema, without loading a model.

The bounded rules of `adapters.llamacpp.bounds` are regular, so the tests translate them to Python regular
expressions and check membership both ways: an integer matches exactly when it is within the bounds; a decimal
that matches is always within them, and one within whole-number bounds always matches. Then the whole path
(`schema_to_gbnf`, llama-cpp-python's converter with the bounds override) is swept with hypothesis: every
schema that `compat.schema` accepts gives GBNF or an `InvalidRequest`, never another exception.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from adapters.errors import InvalidRequest
from adapters.llamacpp.bounds import EmptyRange, integer_rule, number_rule
from adapters.llamacpp.grammar import SUPPORTED_KEYWORDS, check_schema, schema_to_gbnf
from adapters.llamacpp.options import GrammarLimits
from compat.errors import RequestValidationError
from compat.schema import check_schema as check_shape

_ATOM = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\{\d+(?:,\d*)?\}|[()|?*+])')


def to_regex(gbnf: str) -> re.Pattern[str]:
    """The Python regex for a rule body made of literals, classes, groups, alternatives and repetitions."""
    out: list[str] = []
    position = 0
    while position < len(gbnf.strip()):
        match = _ATOM.match(gbnf, position)
        assert match is not None, f"unexpected GBNF at {gbnf[position:]!r}"
        atom = match.group(1)
        if atom.startswith('"'):
            out.append(re.escape(json.loads(atom)))
        elif atom == "(":
            out.append("(?:")
        else:
            out.append(atom)
        position = match.end()
    return re.compile("".join(out))


def bounds_of(node: dict[str, Any]) -> tuple[Decimal | None, bool, Decimal | None, bool]:
    lows = [(Decimal(str(node[k])), k != "minimum") for k in ("minimum", "exclusiveMinimum") if k in node]
    highs = [(Decimal(str(node[k])), k != "maximum") for k in ("maximum", "exclusiveMaximum") if k in node]
    low = max(lows) if lows else (None, False)
    high = min(highs, key=lambda b: (b[0], not b[1])) if highs else (None, False)
    return low[0], low[1], high[0], high[1]


def within(value: Decimal, node: dict[str, Any]) -> bool:
    low, low_open, high, high_open = bounds_of(node)
    above = low is None or value > low or (value == low and not low_open)
    below = high is None or value < high or (value == high and not high_open)
    return above and below


def near_bounds(node: dict[str, Any], steps: int) -> range:
    """Every multiple of 1/steps from just below the lowest bound to just above the highest, times steps."""
    values = [int(Decimal(str(node[key]))) for key in node if key != "type"]
    return range((min(values) - 2) * steps, (max(values) + 2) * steps + 1)


bound = st.integers(-1200, 1200) | st.sampled_from([0, 9, 10, 99, 100, 999, 1000, -1, -10, -100])
bound_keys = st.sets(st.sampled_from(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]), min_size=1)


@st.composite
def integer_nodes(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(bound_keys)
    values = {key: draw(bound | st.floats(-1500, 1500).map(lambda x: round(x, 1))) for key in keys}
    return {"type": "integer", **values}


@settings(max_examples=150, deadline=None)
@given(integer_nodes(), st.lists(st.integers(-3000, 3000), min_size=20, max_size=20))
def test_an_integer_matches_exactly_when_it_is_within_the_bounds(node: dict[str, Any], probes: list[int]) -> None:
    try:
        pattern = to_regex(integer_rule(node))
    except EmptyRange:
        assert not any(within(Decimal(v), node) for v in near_bounds(node, 1))
        return
    low, _, high, _ = bounds_of(node)
    edges = [int(x) + d for x in (low, high) if x is not None for d in (-1, 0, 1)]
    for value in [*probes, *edges, 0, -1, 1]:
        assert bool(pattern.fullmatch(str(value))) == within(Decimal(value), node), (node, value)
    assert not pattern.fullmatch("-0") and not pattern.fullmatch("01") and not pattern.fullmatch("1.0")


@st.composite
def number_nodes(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": "number", **{key: draw(bound) for key in draw(bound_keys)}}


decimals = st.decimals(-1500, 1500, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(number_nodes(), st.lists(decimals, min_size=20, max_size=20))
@example({"type": "number", "exclusiveMinimum": 0, "maximum": 1}, [Decimal("0.000"), Decimal("0.001")] * 10)
def test_a_decimal_matches_exactly_when_it_is_within_whole_number_bounds(
    node: dict[str, Any], probes: list[Decimal]
) -> None:
    try:
        pattern = to_regex(number_rule(node))
    except EmptyRange:
        assert not any(within(Decimal(v) / 4, node) for v in near_bounds(node, 4))
        return
    for value in probes:
        text = format(value, "f")
        text = text.rstrip("0").rstrip(".") if "." in text else text  # JSON's shortest form of the decimal
        text = "0" if text in ("-0", "") else text
        assert bool(pattern.fullmatch(text)) == within(value, node), (node, text)
    assert not pattern.fullmatch("1e2") and not pattern.fullmatch("00") and not pattern.fullmatch("-0")


def test_fractional_number_bounds_round_inward_and_empty_ones_are_refused() -> None:
    pattern = to_regex(number_rule({"type": "number", "minimum": 0.5, "maximum": 2.5}))
    matches = [bool(pattern.fullmatch(text)) for text in ("0.7", "1", "1.5", "2", "2.2")]
    assert matches == [False, True, True, True, False]
    with pytest.raises(EmptyRange, match="rounded to whole numbers"):
        number_rule({"type": "number", "minimum": 0.1, "maximum": 0.9})
    with pytest.raises(EmptyRange, match="no integer"):
        integer_rule({"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 5})


def test_huge_bounds_cap_the_open_side_and_refuse_the_other() -> None:
    pattern = to_regex(integer_rule({"type": "integer", "minimum": 5, "maximum": 10**300}))
    assert pattern.fullmatch("9" * 16) and not pattern.fullmatch("1" + "0" * 16) and not pattern.fullmatch("4")
    pattern = to_regex(number_rule({"type": "number", "maximum": 3, "minimum": -1e300}))
    assert pattern.fullmatch("-" + "9" * 16 + ".5") and not pattern.fullmatch("3.5")
    for node in ({"type": "integer", "minimum": 10**25}, {"type": "number", "minimum": 1e25}):
        with pytest.raises(EmptyRange, match="more than 20 digits"):
            (integer_rule if node["type"] == "integer" else number_rule)(node)


LIMITS = GrammarLimits()


def test_bounds_reach_the_grammar_at_any_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 5},
            "list": {"type": "array", "items": {"$ref": "#/$defs/p"}},
        },
        "$defs": {"p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
    }
    gbnf = schema_to_gbnf(schema, LIMITS, "response_format")
    assert "[1-5] space" in gbnf
    assert '("0" "." [0-9]{0,14} [1-9] | "1") space' in gbnf


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"minimum": 1}, 'minimum needs "type": "integer" or "number"'),
        ({"type": ["integer", "null"], "minimum": 2, "maximum": 1}, "no integer lies within"),
        ({"type": "integer", "enum": [1, 2], "maximum": 1}, "and no enum or const"),
        ({"type": "integer", "maximum": "1"}, "must be a number"),
        ({"type": "integer", "minimum": 2, "maximum": 1}, "no integer lies within"),
        ({"type": "integer", "multipleOf": 2}, "supported: type, properties"),
    ],
)
def test_bounds_the_grammar_cannot_enforce_are_a_400(schema: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_schema(schema, LIMITS, "response_format")
    assert fragment in info.value.message
    assert info.value.param == "response_format"


@pytest.mark.parametrize("keyword", ["multipleOf", "uniqueItems", "oneOf", "not", "minProperties"])
def test_every_refusal_names_the_same_supported_list(keyword: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_schema({"type": "object", keyword: 1}, LIMITS, "p")
    assert info.value.message.endswith("supported: " + ", ".join(SUPPORTED_KEYWORDS))
    assert {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} <= set(SUPPORTED_KEYWORDS)


keywords = st.sampled_from(
    ["type", "properties", "required", "items", "prefixItems", "anyOf", "enum", "const", "minimum", "maximum",
     "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "format",
     "$ref", "$defs", "additionalProperties", "title"]
)  # fmt: skip
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(-1e6, 1e6)
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean", "#", "#/$defs/a",
                       "^[a-z]{1,3}$", "date", "a"])
)  # fmt: skip
schemas = st.recursive(
    leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(keywords | st.just("a"), kids, max_size=4),
    max_leaves=14,
)


@settings(max_examples=150, deadline=None)
@given(schemas)
def test_every_well_formed_schema_gives_a_grammar_or_a_400(candidate: object) -> None:
    schema = candidate if isinstance(candidate, dict) else {"items": candidate}
    try:
        check_shape(schema, "response_format.json_schema.schema")
    except RequestValidationError:
        return
    try:
        gbnf = schema_to_gbnf(schema, LIMITS, "response_format")
    except InvalidRequest as exc:
        assert exc.param == "response_format"
        return
    assert "root ::= " in gbnf


@pytest.mark.parametrize(
    "exc", [AttributeError("'bool' object has no attribute 'get'"), AssertionError(), RuntimeError("odd")]
)
def test_whatever_the_converter_raises_is_the_schemas_400_not_the_backends_fault(exc: Exception) -> None:
    from adapters.llamacpp.errors import Phase, translate

    error = translate(exc, Phase.GRAMMAR, param="tools[0].function.parameters")
    assert isinstance(error, InvalidRequest) and not error.backend_fault
    assert (error.http_status, error.param) == (400, "tools[0].function.parameters")
    assert error.message.startswith("cannot build a grammar from this JSON schema: ")


def test_the_schema_true_is_any_value_where_the_converter_used_to_crash() -> None:
    gbnf = schema_to_gbnf({"type": "array", "items": True}, LIMITS, "response_format")
    assert "root ::= " in gbnf and "value" in gbnf
