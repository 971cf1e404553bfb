"""Grammars (GBNF) that force the model's output to be valid JSON for a schema, or a valid tool call.

Theory of operation: a client's JSON schema is first *checked* (pure Python, before any model work), then
converted by llama-cpp-python's JSON-schema-to-GBNF converter, then its size is checked, and finally llama.cpp
itself parses it (`validate_in_llama`, in the worker thread) - a grammar it refuses is a 400, never a crash.

Two promises shape the checks:

- *Bounded cost.* The converter expands repetition counts into nested rules (``maxLength: 3000`` becomes 3000
  nested groups) and llama.cpp's grammar engine gets slower with every alternative it tracks, so the schema's
  size, nesting depth and every repetition count are bounded (`GrammarLimits`), and so is the GBNF produced.
- *Output that validates.* The converter silently ignores some JSON-schema keywords (``multipleOf``,
  ``uniqueItems``, ``not``...), which would let the model produce JSON that parses but does not validate. A
  schema using one of them is rejected with a message naming it, rather than enforced halfway. The supported
  subset (`SUPPORTED_KEYWORDS`, the one list every refusal names) is close to OpenAI's structured-output subset:
  ``type`` (one or a list: a list is checked and converted as the ``anyOf`` of its types, each with the keywords
  for it, see `adapters.type_lists`, where the converter would drop them), ``properties``, ``required``,
  ``additionalProperties``, ``items``/``prefixItems`` with ``minItems``/``maxItems``, strings with
  ``minLength``/``maxLength``, or ``pattern`` (anchored with ``^...$``), or ``format``, ``enum``, ``const``,
  ``anyOf``, local ``$ref`` into ``$defs``/``definitions``, integers and numbers with
  ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` (the converter ignores these, so
  `adapters.llamacpp.converter` writes their rules: see `adapters.llamacpp.bounds`), and annotations (``title``,
  ``description``...).

Tool calls: a forced call (``tool_choice`` required or named) is the JSON object
``{"name": <one offered tool's name>, "arguments": <an object valid for that tool's parameters>}``, built as a
schema (`tool_call_schema`) and converted like any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidRequest
from ..type_lists import NoValueMatches, expand_type_lists, split_type_list
from ..types import JSONObject, ToolSpec
from .bounds import BOUND_KEYWORDS, EmptyRange, integer_rule, number_rule
from .errors import Phase, translate
from .options import GrammarLimits

#: JSON-schema validation keywords the converter does not enforce: rejected (see the module docstring).
UNENFORCED_KEYWORDS = frozenset(
    {
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalItems",
        "$dynamicRef",
        "$recursiveRef",
    }
)

#: The validation keywords the grammar enforces: the one list every refusal names.
SUPPORTED_KEYWORDS = (
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "format", "enum", "const", "anyOf", "$ref", *BOUND_KEYWORDS,
)  # fmt: skip

#: Keywords that only describe and never constrain: allowed anywhere.
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
     "writeOnly", "$defs", "definitions", "format", "nullable", "strict"}
)  # fmt: skip

_REPETITION_KEYWORDS = ("minItems", "maxItems", "minLength", "maxLength")
_QUANTIFIER = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_MAX_PATTERN_CHARS = 1000


def _reject(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def check_schema(schema: object, limits: GrammarLimits, param: str) -> None:
    """Raise `InvalidRequest` (400, naming ``param``) unless ``schema`` is within the supported, bounded subset."""
    if not isinstance(schema, Mapping):
        raise _reject("the JSON schema must be an object", param)
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > limits.max_schema_bytes:
        raise _reject(
            f"the JSON schema is {size} bytes; this server builds grammars from schemas of at most "
            f"{limits.max_schema_bytes} bytes",
            param,
        )
    _check_node(schema, limits, param, "#", 1)


def _check_node(node: object, limits: GrammarLimits, param: str, where: str, depth: int) -> None:
    if depth > limits.max_schema_depth:
        raise _reject(f"the JSON schema nests deeper than {limits.max_schema_depth} levels (at {where})", param)
    if isinstance(node, bool):
        if node is False:
            raise _reject(f"the schema `false` at {where} can never be satisfied", param)
        return
    if not isinstance(node, Mapping):
        raise _reject(f"{where} must be a JSON schema object", param)
    if isinstance(node.get("type"), list):
        _check_type_list(node, limits, param, where, depth)
        return
    bad = sorted(UNENFORCED_KEYWORDS.intersection(node))
    if bad:
        raise _reject(
            f"JSON schema keyword {bad[0]!r} (at {where}) cannot be enforced by a grammar; "
            f"supported: {', '.join(SUPPORTED_KEYWORDS)}",
            param,
        )
    for key in _REPETITION_KEYWORDS:
        if key in node:
            value = node[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _reject(f"{where}/{key} must be a non-negative integer", param)
            if value > limits.max_repetition:
                raise _reject(
                    f"{where}/{key} is {value}; grammars allow repetition counts up to {limits.max_repetition}",
                    param,
                )
    _check_combinations(node, param, where)
    if "pattern" in node:
        _check_pattern(node["pattern"], limits, param, where)
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise _reject(f"{where}/$ref must be a local reference ('#/$defs/...'), got {ref!r}", param)
    _check_children(node, limits, param, where, depth)


def _check_type_list(node: Mapping[str, Any], limits: GrammarLimits, param: str, where: str, depth: int) -> None:
    """Check a node with a list of types as the ``anyOf`` it is converted to (`adapters.type_lists`): each
    type's branch is checked where the node is, since its keywords are the node's own."""
    _check_exclusive(node, param, where)
    types = node["type"]
    if not types or not all(isinstance(t, str) for t in types):
        raise _reject(f"{where}/type must be a type name or a non-empty list of them", param)
    try:
        split = split_type_list(node)
    except NoValueMatches as exc:
        raise _reject(f"{where}: {exc}", param) from exc
    for branch in split.branches:
        _check_node(branch, limits, param, where, depth)
    _check_children(split.annotations, limits, param, where, depth)


def _constraints(node: Mapping[str, Any]) -> set[str]:
    return set(node) - ANNOTATIONS


def _check_exclusive(node: Mapping[str, Any], param: str, where: str) -> None:
    """``$ref`` and ``anyOf`` take no constraint beside them: the converter would honour them and drop it."""
    constraints = _constraints(node)
    for exclusive in ("$ref", "anyOf"):
        if exclusive in node and constraints - {exclusive}:
            other = sorted(constraints - {exclusive})[0]
            raise _reject(f"{where} combines {exclusive!r} with {other!r}; use one or the other", param)


def _check_combinations(node: Mapping[str, Any], param: str, where: str) -> None:
    """Reject keyword combinations where the converter would honour one keyword and drop the others."""
    _check_exclusive(node, param, where)
    schema_type = node.get("type")
    if ("minLength" in node or "maxLength" in node) and (
        schema_type != "string" or "pattern" in node or node.get("format") in _FORMATS
    ):
        raise _reject(f'{where}: minLength/maxLength need "type": "string" and no pattern or format', param)
    if ("minItems" in node or "maxItems" in node) and not ("items" in node or "prefixItems" in node):
        raise _reject(f"{where}: minItems/maxItems need an items schema", param)
    if "prefixItems" in node and ("minItems" in node or "maxItems" in node or "items" in node):
        raise _reject(f"{where}: prefixItems cannot be combined with items, minItems or maxItems", param)
    if "items" in node and isinstance(node["items"], list):
        raise _reject(f"{where}/items must be a schema (use prefixItems for tuples)", param)
    _check_bounds(node, param, where)


def _check_bounds(node: Mapping[str, Any], param: str, where: str) -> None:
    """Numeric bounds need one numeric ``type`` (and no enum/const, which the converter honours instead), and
    must leave a value the grammar can produce (`adapters.llamacpp.bounds`)."""
    used = [key for key in BOUND_KEYWORDS if key in node]
    if not used:
        return
    if node.get("type") not in ("integer", "number") or "enum" in node or "const" in node:
        raise _reject(f'{where}: {used[0]} needs "type": "integer" or "number" (and no enum or const)', param)
    for key in used:
        if isinstance(node[key], bool) or not isinstance(node[key], int | float):
            raise _reject(f"{where}/{key} must be a number", param)
    try:
        (integer_rule if node["type"] == "integer" else number_rule)(node)
    except EmptyRange as exc:
        raise _reject(f"{where}: {exc}", param) from exc


_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})


def _check_pattern(pattern: object, limits: GrammarLimits, param: str, where: str) -> None:
    if not isinstance(pattern, str) or not (pattern.startswith("^") and pattern.endswith("$")):
        raise _reject(f"{where}/pattern must be a regular expression anchored with ^ and $", param)
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise _reject(f"{where}/pattern is longer than {_MAX_PATTERN_CHARS} characters", param)
    problem = _json_unsafe(pattern[1:-1])
    if problem:
        raise _reject(f"{where}/pattern: {problem}", param)
    for match in _QUANTIFIER.finditer(pattern):
        for number in match.groups():
            if number and int(number) > limits.max_repetition:
                raise _reject(
                    f"{where}/pattern repeats {number} times; grammars allow up to {limits.max_repetition}", param
                )


_REGEX_META = frozenset(".^$*+?()[]{}|/-")


def _unsafe_char(code: int) -> bool:
    """Characters a pattern may not produce: the grammar copies them raw into a JSON string, where a quote,
    a backslash or a control character would end it or make it invalid."""
    return code < 0x20 or code in (0x22, 0x5C)


def _json_unsafe(body: str) -> str | None:
    """Why the regex ``body`` could generate text that is not valid inside a JSON string, or ``None``.

    llama-cpp-python's converter writes what a pattern matches into the string without JSON escaping, so the
    patterns accepted are those that cannot match a quote, a backslash or a control character: literals,
    ``.`` (restricted to safe characters by `_SAFE_DOT`), groups, alternatives, quantifiers, escaped
    metacharacters and non-negated character classes whose members and ranges avoid those characters.
    """
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            escaped = body[i + 1 : i + 2]
            if escaped not in _REGEX_META:
                return f"the escape \\{escaped} is not supported (only escaped metacharacters are)"
            i += 2
        elif c == "[":
            end = i + 1
            members: list[int] = []
            if body[end : end + 1] == "^":
                return "negated character classes are not supported"
            while end < len(body) and body[end] != "]":
                if body[end] == "\\":
                    escaped = body[end + 1 : end + 2]
                    if escaped not in _REGEX_META:
                        return f"the escape \\{escaped} is not supported (only escaped metacharacters are)"
                    members.append(ord(escaped))
                    end += 2
                elif body[end] == "-" and members and end + 1 < len(body) and body[end + 1] != "]":
                    low, high = members.pop(), ord(body[end + 1])
                    if low < 0x20 or any(low <= code <= high for code in (0x22, 0x5C)):
                        return f"the range {chr(low)}-{chr(high)} includes a quote, a backslash or a control char"
                    end += 2
                else:
                    members.append(ord(body[end]))
                    end += 1
            if any(_unsafe_char(code) for code in members):
                return "a character class includes a quote, a backslash or a control character"
            i = end + 1
        elif _unsafe_char(ord(c)):
            return "it contains a quote, a backslash or a control character"
        else:
            i += 1
    return None


def _check_children(node: Mapping[str, Any], limits: GrammarLimits, param: str, where: str, depth: int) -> None:
    def sub(value: object, path: str) -> None:
        _check_node(value, limits, param, path, depth + 1)

    for key in ("properties", "$defs", "definitions"):
        if key in node:
            table = node[key]
            if not isinstance(table, Mapping):
                raise _reject(f"{where}/{key} must be an object", param)
            for name, value in table.items():
                sub(value, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties"):
        if key in node and not isinstance(node[key], bool):  # true/false here allow/forbid, nothing to check
            sub(node[key], f"{where}/{key}")
    for key in ("anyOf", "prefixItems"):
        if key in node:
            options = node[key]
            if not isinstance(options, list) or not options:
                raise _reject(f"{where}/{key} must be a non-empty list of schemas", param)
            for index, value in enumerate(options):
                sub(value, f"{where}/{key}/{index}")
    if "required" in node and not (
        isinstance(node["required"], list) and all(isinstance(r, str) for r in node["required"])
    ):
        raise _reject(f"{where}/required must be a list of property names", param)
    if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
        raise _reject(f"{where}/enum must be a non-empty list", param)


def schema_to_gbnf(
    schema: JSONObject, limits: GrammarLimits, param: str, *, prop_order: Sequence[str] = ()
) -> str:
    """Check ``schema`` and convert it to GBNF (root rule ``root``). Raises `InvalidRequest` naming ``param``."""
    check_schema(schema, limits, param)
    from .converter import json_schema_to_gbnf

    try:
        gbnf: str = json_schema_to_gbnf(json.dumps(expand_type_lists(schema)), list(prop_order))
    except Exception as exc:  # the converter asserts/raises on what it cannot express
        raise translate(exc, Phase.GRAMMAR, param=param) from exc
    gbnf = _json_safe_strings(gbnf)
    size = len(gbnf.encode())
    if size > limits.max_grammar_bytes:
        raise _reject(
            f"the grammar for this schema would be {size} bytes; the limit is {limits.max_grammar_bytes}", param
        )
    return gbnf


# The converter's string character rule lets raw control characters into JSON strings (invalid JSON: the
# model does write raw newlines there), and its ``.`` for patterns also allows quotes and backslashes.
_CHAR_RULE = re.compile(r"^char ::= .*$", re.MULTILINE)
_SAFE_CHAR = r'char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
_DOT_RULE = re.compile(r"^dot ::= .*$", re.MULTILINE)
_SAFE_DOT = r'dot ::= [^"\\\x00-\x1F]'


def _json_safe_strings(gbnf: str) -> str:
    """``gbnf`` with the string-character and pattern-dot rules replaced by ones that only produce valid JSON."""
    gbnf = _CHAR_RULE.sub(lambda _: _SAFE_CHAR, gbnf)
    return _DOT_RULE.sub(lambda _: _SAFE_DOT, gbnf)


#: The arguments of a tool that declares no parameters: exactly ``{}`` (any object would let the model ramble
#: through invented arguments until max_tokens).
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def tool_arguments_schema(tool: ToolSpec) -> dict[str, Any]:
    """The schema a call's ``arguments`` must match: the tool's parameters, or ``{}`` when it has none.

    Parameters without a ``type`` are given ``"type": "object"`` (unless they use ``anyOf``/``$ref``, which
    take no siblings), so the grammar can only produce an arguments object.
    """
    parameters = dict(tool.parameters)
    if not _constraints(parameters):
        return dict(NO_ARGUMENTS)
    if "type" not in parameters and not {"anyOf", "$ref"} & set(parameters):
        return {"type": "object", **parameters}
    return parameters


def check_tools(tools: Sequence[ToolSpec], limits: GrammarLimits) -> None:
    """Check every tool's arguments schema (param ``tools[i].function.parameters``): an object, within limits."""
    for index, tool in enumerate(tools):
        param = f"tools[{index}].function.parameters"
        schema = tool_arguments_schema(tool)
        if "type" in schema and schema["type"] != "object":
            raise _reject("a function's parameters must be a JSON Schema of type 'object'", param)
        check_schema(schema, limits, param)


def tool_call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """A schema matching exactly the calls ``{"name": ..., "arguments": {...}}`` of the given tools."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": tool.name}, "arguments": tool_arguments_schema(tool)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def tool_call_gbnf(tools: Sequence[ToolSpec], limits: GrammarLimits) -> str:
    """GBNF forcing one call of one of ``tools``; each tool's schema is checked (param ``tools[i]...``)."""
    check_tools(tools, limits)
    return schema_to_gbnf(tool_call_schema(tools), limits, "tools", prop_order=("name", "arguments"))


def validate_in_llama(vocab: Any, gbnf: str, param: str) -> None:
    """Have llama.cpp parse ``gbnf`` for a model's vocabulary (``llama_vocab *``); `InvalidRequest` if it refuses.

    llama.cpp's own parser is the final judge (it has limits of its own, such as on repetition size); a
    refused grammar would otherwise make sampling fail. Blocking: call it from the worker thread.
    """
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not sampler:
        raise _reject("the grammar built from this schema is too complex for llama.cpp", param)
    llama_cpp.llama_sampler_free(sampler)
