"""JSON-schema type lists (``"type": ["string", "null"]``) rewritten as an ``anyOf`` of one schema per type.

A list of types is how many schema generators write an optional field (zod, OpenAI's own strict-mode examples,
hand-written Anthropic ``input_schema``s), and it is often combined with keywords for one of its types:
``{"type": ["string", "null"], "maxLength": 20}``. Backends that build on a schema compiler handle lists badly:
llama-cpp-python's grammar converter keeps the types and silently drops every other keyword, and the anthropic
SDK's ``transform_schema`` asserts on them. Both handle ``anyOf``. The rewrite is exact, because JSON Schema
applies each type-specific keyword only to instances of its type (``maxLength`` says nothing about ``null``):

- each listed type becomes a branch with ``"type": <it>``, the keywords that apply to that type
  (`TYPE_KEYWORDS`; ``number`` also takes the integer keywords, which are the same) and every keyword that is not
  type-specific (``not``, ``$ref``, unknown keywords...), so what the backend would refuse it still sees;
- annotations (`ANNOTATIONS`: ``title``, ``description``, ``$defs``...) stay once, beside the ``anyOf``;
- with ``enum`` or ``const`` the values decide: the list is dropped and ``enum`` keeps only the values of a listed
  type (`NoValueMatches` when none, or ``const``, is of a listed type: nothing could satisfy the schema);
- a one-type list is just that type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The keywords JSON Schema applies only to instances of one type.
TYPE_KEYWORDS: dict[str, frozenset[str]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format", "contentEncoding", "contentMediaType",
                         "contentSchema"}),
    "integer": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
    "array": frozenset({"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems",
                        "contains", "minContains", "maxContains", "unevaluatedItems"}),
    "object": frozenset({"properties", "patternProperties", "additionalProperties", "required", "minProperties",
                         "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies",
                         "unevaluatedProperties"}),
}  # fmt: skip
TYPE_KEYWORDS["number"] = TYPE_KEYWORDS["integer"]
_TYPED = frozenset().union(*TYPE_KEYWORDS.values())

#: Keywords that describe the whole node (or hold definitions) and constrain nothing: kept beside the anyOf.
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$anchor", "$comment", "deprecated",
     "readOnly", "writeOnly", "$defs", "definitions"}
)  # fmt: skip

#: Where a schema holds subschemas: one schema, a name -> schema map, or a list of schemas.
_ONE = ("additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")


class NoValueMatches(ValueError):
    """A type list next to ``enum`` or ``const`` none of whose values has one of the listed types."""


def json_types(value: object) -> frozenset[str]:
    """The JSON Schema types ``value`` (decoded JSON) is an instance of (an integral number is both)."""
    if value is None:
        return frozenset({"null"})
    if isinstance(value, bool):
        return frozenset({"boolean"})
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer()):
        return frozenset({"integer", "number"})
    if isinstance(value, float):
        return frozenset({"number"})
    if isinstance(value, str):
        return frozenset({"string"})
    if isinstance(value, list):
        return frozenset({"array"})
    return frozenset({"object"})


@dataclass(frozen=True, slots=True)
class TypeSplit:
    """One node's type list split up: the ``branches`` (one per type, or the one ``enum``/``const`` node) and the
    ``annotations`` that go beside them."""

    branches: list[dict[str, Any]]
    annotations: dict[str, Any] = field(default_factory=dict)

    def as_schema(self) -> dict[str, Any]:
        """The node rewritten: the single branch (with the annotations), or ``anyOf`` the branches."""
        if len(self.branches) == 1:
            return {**self.branches[0], **self.annotations}
        return {"anyOf": self.branches, **self.annotations}


def split_type_list(node: Mapping[str, Any]) -> TypeSplit:
    """`TypeSplit` of a node whose ``type`` is a non-empty list of type names (see the module docstring)."""
    types: list[str] = list(node["type"])
    rest = {key: value for key, value in node.items() if key != "type"}
    if "enum" in rest or "const" in rest:
        if "const" in rest and not json_types(rest["const"]) & set(types):
            raise NoValueMatches(f"the const value is not of the listed types ({', '.join(types)})")
        if "enum" in rest and isinstance(rest["enum"], list):
            rest["enum"] = [value for value in rest["enum"] if json_types(value) & set(types)]
            if not rest["enum"]:
                raise NoValueMatches(f"no enum value is of the listed types ({', '.join(types)})")
        return TypeSplit([rest])
    if len(types) == 1:
        return TypeSplit([{"type": types[0], **rest}])
    annotations = {key: value for key, value in rest.items() if key in ANNOTATIONS}
    shared = {key: value for key, value in rest.items() if key not in ANNOTATIONS and key not in _TYPED}
    branches = [
        {"type": name, **shared, **{k: v for k, v in rest.items() if k in TYPE_KEYWORDS.get(name, ())}}
        for name in types
    ]
    return TypeSplit(branches, annotations)


def expand_type_lists(schema: Any) -> Any:
    """``schema`` with every type list in it, at any depth, rewritten by `split_type_list` (a new document; the
    client's is not changed). Anything that is not a schema object is returned as it is."""
    if not isinstance(schema, Mapping):
        return schema
    node = dict(schema)
    for key in _ONE:
        if key in node:
            node[key] = expand_type_lists(node[key])
    for key in _MAP:
        if isinstance(node.get(key), Mapping):
            node[key] = {name: expand_type_lists(value) for name, value in node[key].items()}
    for key in (*_LIST, "items"):
        if isinstance(node.get(key), list):
            node[key] = [expand_type_lists(value) for value in node[key]]
    if "items" in node and not isinstance(node["items"], list):
        node["items"] = expand_type_lists(node["items"])
    types = node.get("type")
    if isinstance(types, list) and types and all(isinstance(name, str) for name in types):
        return split_type_list(node).as_schema()
    return node
