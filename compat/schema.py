"""Client JSON schemas (a response format's schema, a tool's parameters) checked for shape, once, for all dialects.

A schema a client sends is later walked by code that has to trust its shape: the mock's example generator, the
llama.cpp grammar builder, Anthropic's schema transform. ``"required": 5`` or ``"properties": []`` there would
be a crash inside a backend - a 500 that the circuit breaker counts against a healthy backend. So every dialect
calls `check_schema` while it parses the request, and a malformed schema is a 400 naming the exact place
(``response_format.json_schema.schema.properties.age.type``).

What is checked is *shape*, per JSON Schema draft 2020-12 (with the draft-07 spellings clients still send:
``definitions``, ``dependencies``, an array ``items``): each keyword the specification defines holds the kind of
value it defines (`KEYWORD_KINDS`), ``type`` names only JSON Schema types, ``enum`` and the combinators are
non-empty, and every ``$ref`` points inside the document (``#`` or ``#/...``; nothing is ever fetched) at a
schema. Unknown keywords are allowed, as the specification says (annotations, vendor extensions). What a backend
can *enforce* is its own business (the llama.cpp grammar supports a subset and says which).

Numbers need no check here: `compat.json_body` already refuses any that overflow to infinity.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from adapters.json_pointer import UnresolvedRef, resolve_local_ref

from ._fields import JSONDict, field_path, invalid_type, invalid_value, item_path

#: The type names JSON Schema defines.
TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})

SCHEMA = "schema"
SCHEMA_MAP = "schema map"
SCHEMA_LIST = "schema list"
SCHEMA_OR_LIST = "schema or schema list"
COUNT = "count"
NUMBER = "number"
POSITIVE = "positive number"
STRING = "string"
BOOLEAN = "boolean"
NAMES = "names"
NAME_LISTS = "name lists"
DEPENDENCIES = "dependencies"
NON_EMPTY = "non-empty array"
ARRAY = "array"
TYPE = "type"

#: Every keyword whose value has a defined kind; any other keyword is left alone.
KEYWORD_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("not", "if", "then", "else", "additionalProperties", "contains", "propertyNames", "additionalItems",
         "unevaluatedItems", "unevaluatedProperties"),
        SCHEMA,
    ),
    **dict.fromkeys(("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"), SCHEMA_MAP),
    **dict.fromkeys(("allOf", "anyOf", "oneOf", "prefixItems"), SCHEMA_LIST),
    "items": SCHEMA_OR_LIST,
    **dict.fromkeys(
        ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains",
         "maxContains"),
        COUNT,
    ),
    **dict.fromkeys(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"), NUMBER),
    "multipleOf": POSITIVE,
    **dict.fromkeys(
        ("pattern", "format", "$ref", "$id", "$schema", "$anchor", "$comment", "title", "description",
         "contentEncoding", "contentMediaType", "$dynamicRef", "$dynamicAnchor"),
        STRING,
    ),
    **dict.fromkeys(("uniqueItems", "deprecated", "readOnly", "writeOnly"), BOOLEAN),
    "required": NAMES,
    "dependentRequired": NAME_LISTS,
    "dependencies": DEPENDENCIES,
    "enum": NON_EMPTY,
    "examples": ARRAY,
    "type": TYPE,
}  # fmt: skip

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]{0,63}")


def name_path(prefix: str, name: str) -> str:
    """``prefix.name``, or ``prefix["name"]`` when the name is not a plain identifier (kept to 64 characters)."""
    if _IDENTIFIER.fullmatch(name):
        return field_path(prefix, name)
    return f"{prefix}[{json.dumps(name[:64])}]"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_names(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


class _Walk:
    """One check of one document: a stack of (node, path) still to check, and the ``$ref``s seen."""

    def __init__(self, root: JSONDict, path: str) -> None:
        self.root = root
        self.root_path = path
        self.stack: list[tuple[object, str]] = [(root, path)]
        self.seen: set[int] = set()
        self.refs: list[tuple[str, str]] = []

    def run(self) -> None:
        while self.stack:
            while self.stack:
                node, path = self.stack.pop()
                self.node(node, path)
            refs, self.refs = self.refs, []
            for ref, path in refs:
                self.stack.append((self.resolve(ref, path), path))

    def node(self, node: object, path: str) -> None:
        if isinstance(node, bool):
            return
        if not isinstance(node, dict):
            raise invalid_type(path, "a JSON schema (an object or a boolean)", node)
        if id(node) in self.seen:
            return
        self.seen.add(id(node))
        for key, value in node.items():
            kind = KEYWORD_KINDS.get(key)
            if kind is not None:
                _CHECKS[kind](self, value, field_path(path, key))
        if isinstance(node.get("$ref"), str):
            self.refs.append((node["$ref"], field_path(path, "$ref")))

    def resolve(self, ref: str, path: str) -> object:
        """The value ``ref`` points at inside the document; 400 unless it is a local JSON pointer that resolves."""
        try:
            return resolve_local_ref(self.root, ref)
        except UnresolvedRef as exc:
            reason = (
                f"the reference {ref[:64]!r} points at nothing in this schema."
                if exc.local
                else f"only references inside the schema ('#/$defs/...') are supported, not {ref[:64]!r}."
            )
            raise invalid_value(path, reason) from None


def _schema(walk: _Walk, value: object, path: str) -> None:
    walk.stack.append((value, path))


def _schema_map(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object of JSON schemas", value)
    walk.stack.extend((item, name_path(path, name)) for name, item in value.items())


def _schema_list(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, list):
        raise invalid_type(path, "an array of JSON schemas", value)
    if not value:
        raise invalid_value(path, "expected an array with at least 1 schema, but got an empty array.")
    walk.stack.extend((item, item_path(path, i)) for i, item in enumerate(value))


def _schema_or_list(walk: _Walk, value: object, path: str) -> None:
    if isinstance(value, list):
        _schema_list(walk, value, path)
    else:
        _schema(walk, value, path)


def _count(walk: _Walk, value: object, path: str) -> None:
    if not _is_count(value):
        raise invalid_value(path, "expected a non-negative integer.")


def _number(walk: _Walk, value: object, path: str) -> None:
    if not _is_number(value):
        raise invalid_type(path, "a number", value)


def _positive(walk: _Walk, value: object, path: str) -> None:
    _number(walk, value, path)
    if not value > 0:  # type: ignore[operator]  # a number, checked just above
        raise invalid_value(path, "expected a number greater than 0.")


def _string(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, str):
        raise invalid_type(path, "a string", value)


def _boolean(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, bool):
        raise invalid_type(path, "a boolean", value)


def _names(walk: _Walk, value: object, path: str) -> None:
    if not _is_names(value):
        raise invalid_value(path, "expected an array of property names (strings).")


def _name_lists(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object of arrays of property names", value)
    for name, names in value.items():
        _names(walk, names, name_path(path, name))


def _dependencies(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object", value)
    for name, item in value.items():
        (_names if isinstance(item, list) else _schema)(walk, item, name_path(path, name))


def _non_empty(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, list):
        raise invalid_type(path, "an array", value)
    if not value:
        raise invalid_value(path, "expected an array with at least 1 value: no value matches an empty enum.")


def _array(walk: _Walk, value: object, path: str) -> None:
    if not isinstance(value, list):
        raise invalid_type(path, "an array", value)


def _type(walk: _Walk, value: object, path: str) -> None:
    names = value if isinstance(value, list) else [value]
    expected = ", ".join(sorted(TYPES))
    if not names or not all(isinstance(name, str) and name in TYPES for name in names):
        raise invalid_value(path, f"expected one of {expected}, or a non-empty array of them.")
    if len(set(names)) != len(names):
        raise invalid_value(path, "a type is listed twice.")


_CHECKS: dict[str, Callable[[_Walk, object, str], None]] = {
    SCHEMA: _schema,
    SCHEMA_MAP: _schema_map,
    SCHEMA_LIST: _schema_list,
    SCHEMA_OR_LIST: _schema_or_list,
    COUNT: _count,
    NUMBER: _number,
    POSITIVE: _positive,
    STRING: _string,
    BOOLEAN: _boolean,
    NAMES: _names,
    NAME_LISTS: _name_lists,
    DEPENDENCIES: _dependencies,
    NON_EMPTY: _non_empty,
    ARRAY: _array,
    TYPE: _type,
}


def check_schema(schema: JSONDict, path: str) -> JSONDict:
    """``schema`` itself, once every keyword in it is well formed; else `RequestValidationError` naming the place.

    ``path`` is the request field holding the schema (``tools[0].function.parameters``); error params extend it.
    """
    _Walk(schema, path).run()
    return schema
