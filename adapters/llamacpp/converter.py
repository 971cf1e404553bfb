"""llama-cpp-python's JSON-schema-to-GBNF converter, taught numeric bounds.

A narrow override: `BoundedConverter` replaces the rule of an ``integer`` or ``number`` node that has bounds
with the one `adapters.llamacpp.bounds` writes, and leaves every other node to the original ``visit`` (which
calls back into this ``visit`` for nested nodes, so bounds are honoured at any depth). `json_schema_to_gbnf`
is the library function of the same name, using this converter. It also reads the boolean schema ``true``
(allowed anywhere a schema is) as ``{}``, where the original converter crashes on it. Importing this module
imports llama_cpp.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_cpp import llama_grammar

from .bounds import BOUND_KEYWORDS, integer_rule, number_rule

_SchemaConverter: Any = llama_grammar.SchemaConverter  # untyped: seen as Any, so the override type-checks


class BoundedConverter(_SchemaConverter):  # type: ignore[misc]
    """`SchemaConverter` that enforces ``minimum``/``maximum`` and their exclusive forms (see the module doc)."""

    def visit(self, schema: Any, name: str) -> Any:
        if schema is True:  # the schema that allows anything (`false` never gets here: check_schema refuses it)
            schema = {}
        numeric = isinstance(schema, dict) and schema.get("type") in ("integer", "number")
        if numeric and any(key in schema for key in BOUND_KEYWORDS):
            rule = integer_rule(schema) if schema["type"] == "integer" else number_rule(schema)
            rule_name = name + "-" if name in llama_grammar.RESERVED_NAMES else name or "root"
            return self._add_rule(rule_name, rule + " space")
        return super().visit(schema, name)


def json_schema_to_gbnf(schema: str, prop_order: Sequence[str] = ()) -> str:
    """GBNF (root rule ``root``) for the JSON schema text ``schema``, numeric bounds enforced."""
    converter = BoundedConverter(
        prop_order={name: index for index, name in enumerate(prop_order)},
        allow_fetch=False,
        dotall=False,
        raw_pattern=False,
    )
    resolved = converter.resolve_refs(json.loads(schema), "stdin")
    converter.visit(resolved, "")
    gbnf: str = converter.format_grammar()
    return gbnf
