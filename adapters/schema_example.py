"""The simplest JSON value valid against a client's JSON schema: the mock's structured answers and tool arguments.

Theory of operation: `example` walks the schema from its root and, at each node, takes the first thing that
decides the value - ``$ref`` (followed inside the document), ``const``, ``enum`` (its first member), ``allOf``
(its parts merged into the node), ``anyOf``/``oneOf`` (the first alternative), then ``type`` (a name, or the first
non-null name of a list; without one, the type the other keywords imply). Objects get their required properties,
arrays ``minItems`` items (``prefixItems`` first), strings ``minLength`` characters (or a value of their
``format``), numbers the value nearest 0 within ``minimum``/``maximum`` and their exclusive forms.

The schema has been checked for shape by `compat.schema` before it gets here; what this module still has to
guard against is what is well formed yet has no value (``false``, a ``$ref`` cycle, ``minimum`` above
``maximum``) or would be absurdly large (``minLength: 10**9``): those raise `NoExample`, which the mock turns into
a 400. It never produces a number that is not finite (integer arithmetic for bounds), so the answer always
encodes as strict JSON. ``pattern``, ``multipleOf``, ``not`` and ``uniqueItems`` are not honoured: the mock is
a fixture, not a solver, and says so in docs/api-compat.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .json_pointer import UnresolvedRef, resolve_local_ref

#: Deepest ``$ref``/nesting walk before a schema counts as cyclic.
MAX_DEPTH = 64
#: Largest ``minItems``/``minLength``/``minProperties`` the mock will fill.
MAX_COUNT = 1000

_FORMATS = {
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "date-time": "2024-01-01T00:00:00Z",
    "email": "a@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


class NoExample(ValueError):
    """The schema is well formed but the mock cannot produce a value for it (see the module docstring)."""


def example(schema: object) -> Any:
    """The simplest value valid against ``schema`` (a JSON schema object or boolean); `NoExample` if none.

    A root that does not say what it is gets ``{}``: the object OpenAI's structured answers are.
    """
    return _Walker(schema).value(schema, 0, default="object")


def example_arguments(schema: object) -> dict[str, Any]:
    """Tool-call arguments for a ``parameters`` schema: its example, which must be an object (``{}`` for none)."""
    if isinstance(schema, Mapping) and not schema:
        return {}
    value = _Walker(schema).value(schema, 0, default="object")
    if not isinstance(value, dict):
        raise NoExample("the parameters schema does not describe an object")
    return value


def _implied_type(node: Mapping[str, Any]) -> str:
    keys = set(node)
    if keys & {"properties", "required", "additionalProperties", "minProperties", "patternProperties"}:
        return "object"
    if keys & {"items", "prefixItems", "minItems", "maxItems", "contains"}:
        return "array"
    if keys & {"minLength", "maxLength", "pattern", "format"}:
        return "string"
    if keys & {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}:
        return "number"
    return "null"


def _count(node: Mapping[str, Any], key: str) -> int:
    count = int(node.get(key, 0))
    if count > MAX_COUNT:
        raise NoExample(f"{key} {count} is more than the mock fills (at most {MAX_COUNT})")
    return count


def _integer_bounds(node: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The smallest and largest integers the numeric bounds allow (``None``: unbounded), exactly."""
    lows = [math.ceil(node["minimum"])] if "minimum" in node else []
    highs = [math.floor(node["maximum"])] if "maximum" in node else []
    if "exclusiveMinimum" in node:
        lows.append(math.floor(node["exclusiveMinimum"]) + 1)
    if "exclusiveMaximum" in node:
        highs.append(math.ceil(node["exclusiveMaximum"]) - 1)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _nearest_zero(node: Mapping[str, Any], kind: str) -> int | float:
    """The integer nearest 0 within the bounds; for a number whose bounds hold no integer, their midpoint."""
    low, high = _integer_bounds(node)
    if low is not None and high is not None and low > high:
        if kind == "number":
            return _midpoint(node)
        raise NoExample("no integer lies within the schema's minimum and maximum")
    if low is not None and low > 0:
        return low
    if high is not None and high < 0:
        return high
    return 0


def _midpoint(node: Mapping[str, Any]) -> float:
    """Halfway between the tightest lower and upper bound (both exist: an integer would fit otherwise)."""
    low = max(node[key] for key in ("minimum", "exclusiveMinimum") if key in node)
    high = min(node[key] for key in ("maximum", "exclusiveMaximum") if key in node)
    middle = float(low) / 2 + float(high) / 2  # no overflow, unlike (low + high) / 2
    if not low <= middle <= high or middle in (node.get("exclusiveMinimum"), node.get("exclusiveMaximum")):
        raise NoExample("no number lies within the schema's minimum and maximum")
    return middle


class _Walker:
    def __init__(self, root: object) -> None:
        self.root = root

    def resolve(self, ref: object) -> object:
        """The schema a local ``$ref`` points at (`compat.schema` made sure it resolves; this re-checks)."""
        try:
            return resolve_local_ref(self.root, ref)
        except UnresolvedRef as exc:
            where = "points at nothing" if exc.local else "is not inside the schema"
            raise NoExample(f"the reference {str(ref)[:64]!r} {where}") from None

    def value(self, schema: object, depth: int, default: str = "null") -> Any:
        if depth > MAX_DEPTH:
            raise NoExample("the schema refers to itself without end (or nests too deeply)")
        if schema is False:
            raise NoExample("the schema false has no value")
        if not isinstance(schema, Mapping):
            return None
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), depth + 1, default)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                if isinstance(part, Mapping):
                    merged = _merge(merged, part)
            return self.value(merged, depth + 1, default)
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if alternatives:
            return self.value(alternatives[0], depth + 1, default)
        declared = schema.get("type")
        names = [declared] if isinstance(declared, str) else list(declared or ())
        concrete = [name for name in names if name != "null"]
        kind = concrete[0] if concrete else ("null" if names else _implied_type(schema))
        if kind == "null" and not names:
            kind = default
        return self.typed(kind, schema, depth)

    def typed(self, kind: str, schema: Mapping[str, Any], depth: int) -> Any:
        if kind == "object":
            properties: Mapping[str, Any] = schema.get("properties", {})
            result = {name: self.value(properties.get(name, {}), depth + 1) for name in schema.get("required", ())}
            extra = _count(schema, "minProperties") - len(result)
            result.update((f"property{i}", None) for i in range(max(0, extra)))
            return result
        if kind == "array":
            prefix = [self.value(item, depth + 1) for item in schema.get("prefixItems", ())]
            items = schema.get("items", {})
            wanted = _count(schema, "minItems") - len(prefix)
            if isinstance(items, list):  # draft-07 tuple form
                prefix += [self.value(item, depth + 1) for item in items]
                items = {}
            return prefix + [self.value(items, depth + 1) for _ in range(max(0, wanted))]
        if kind == "string":
            fixed = _FORMATS.get(str(schema.get("format")))
            return fixed if fixed is not None else "a" * _count(schema, "minLength")
        if kind in ("integer", "number"):
            return _nearest_zero(schema, kind)
        if kind == "boolean":
            return False
        return None


def _merge(base: Mapping[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with an ``allOf`` part folded in: properties joined, required lists joined, else ``base`` wins."""
    merged = {**part, **base}
    if "properties" in base or "properties" in part:
        merged["properties"] = {**part.get("properties", {}), **base.get("properties", {})}
    if "required" in base or "required" in part:
        merged["required"] = list(dict.fromkeys([*base.get("required", ()), *part.get("required", ())]))
    return merged
