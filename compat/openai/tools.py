"""``tools``, ``tool_choice`` and ``response_format`` as engine values.

Only function tools exist here: OpenAI's ``custom`` tools (free-text or grammar input) and the
``allowed_tools`` tool choice are not implemented (`UnsupportedParameter`). Names follow OpenAI's rule
(`NAME_PATTERN`) and must be unique, because a backend answers with a tool *name* and the client must be able to
tell which tool was meant. A tool's ``parameters``, when given a ``type``, must have type ``object`` (the
arguments of a call are a JSON object; OpenAI answers 400 the same way). A named ``tool_choice`` must name one
of the offered tools, and ``required`` needs at least one tool; ``auto`` and ``none`` without tools are accepted
(they change nothing). Every schema, in ``parameters`` or ``response_format``, is checked for shape by
`compat.schema.check_schema`.
"""

from __future__ import annotations

import re

from adapters.types import ResponseFormat, ResponseFormatKind, ToolChoice, ToolChoiceMode, ToolSpec

from .._fields import (
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_type,
    invalid_value,
    item_path,
    opt_bool,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..schema import check_schema

NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,64}")

_CHOICE_MODES: dict[str, ToolChoiceMode] = {
    "auto": ToolChoiceMode.AUTO,
    "none": ToolChoiceMode.NONE,
    "required": ToolChoiceMode.REQUIRED,
}
_FORMATS: dict[str, ResponseFormatKind] = {kind.value: kind for kind in ResponseFormatKind}


def _name(value: object, path: str) -> str:
    name = as_str(value, path)
    if not NAME_PATTERN.fullmatch(name):
        raise invalid_value(path, "expected a name of 1 to 64 characters from a-z, A-Z, 0-9, underscore and dash.")
    return name


def parse_tools(value: object, path: str = "tools") -> tuple[ToolSpec, ...]:
    """A non-empty array of function tools with unique names."""
    specs: list[ToolSpec] = []
    for i, item in enumerate(as_list(value, path, non_empty=True)):
        tool_path = item_path(path, i)
        tool = as_object(item, tool_path)
        kind = as_str(required(tool, "type", tool_path), field_path(tool_path, "type"))
        if kind == "custom":
            raise UnsupportedParameter(
                "Custom tools are not supported; use function tools.", param=field_path(tool_path, "type")
            )
        if kind != "function":
            raise invalid_value(field_path(tool_path, "type"), f"expected 'function', but got {kind[:64]!r}.")
        function_path = field_path(tool_path, "function")
        function = as_object(required(tool, "function", tool_path), function_path)
        name_path = field_path(function_path, "name")
        name = _name(required(function, "name", function_path), name_path)
        if any(spec.name == name for spec in specs):
            raise invalid_value(name_path, f"tool names must be unique; {name!r} is given twice.")
        parameters = opt_object(function, "parameters", function_path)
        if parameters is not None:
            check_schema(parameters, field_path(function_path, "parameters"))
        if parameters is not None and "type" in parameters and parameters["type"] != "object":
            # A call's arguments are a JSON object; OpenAI refuses any other parameters type the same way.
            raise invalid_value(
                field_path(function_path, "parameters"),
                f"a function's parameters must be a JSON Schema of type 'object', not {parameters['type']!r:.64}.",
            )
        specs.append(
            ToolSpec(
                name=name,
                description=opt_str(function, "description", function_path),
                parameters={} if parameters is None else parameters,
                strict=bool(opt_bool(function, "strict", function_path)),
            )
        )
    return tuple(specs)


def parse_tool_choice(value: object, tools: tuple[ToolSpec, ...], path: str = "tool_choice") -> ToolChoice:
    """``auto`` (the default), ``none``, ``required`` or a named function that is among ``tools``."""
    if value is None:
        return ToolChoice()
    if isinstance(value, str):
        if value not in _CHOICE_MODES:
            raise invalid_value(path, f"expected 'auto', 'none', 'required' or an object, but got {value[:64]!r}.")
        if value == "required" and not tools:
            raise invalid_value(path, "'required' needs at least one tool in 'tools'.")
        return ToolChoice(_CHOICE_MODES[value])
    if not isinstance(value, dict):
        raise invalid_type(path, "a string or an object", value)
    kind = as_str(required(value, "type", path), field_path(path, "type"))
    if kind in ("allowed_tools", "custom"):
        raise UnsupportedParameter(
            f"tool_choice of type {kind!r} is not supported.", param=field_path(path, "type")
        )
    if kind != "function":
        raise invalid_value(field_path(path, "type"), f"expected 'function', but got {kind[:64]!r}.")
    function_path = field_path(path, "function")
    function = as_object(required(value, "function", path), function_path)
    name_path = field_path(function_path, "name")
    name = as_str(required(function, "name", function_path), name_path)
    if not any(spec.name == name for spec in tools):
        raise invalid_value(name_path, f"{name[:64]!r} is not one of the tools given in 'tools'.")
    return ToolChoice(ToolChoiceMode.NAMED, name)


def parse_response_format(value: object, path: str = "response_format") -> ResponseFormat:
    """``text`` (the default), ``json_object``, or ``json_schema`` with a name and a schema object."""
    if value is None:
        return ResponseFormat()
    response_format = as_object(value, path)
    kind = as_str(required(response_format, "type", path), field_path(path, "type"))
    if kind not in _FORMATS:
        raise invalid_value(
            field_path(path, "type"), f"expected 'text', 'json_object' or 'json_schema', but got {kind[:64]!r}."
        )
    if _FORMATS[kind] is not ResponseFormatKind.JSON_SCHEMA:
        return ResponseFormat(_FORMATS[kind])
    schema_path = field_path(path, "json_schema")
    json_schema = as_object(required(response_format, "json_schema", path), schema_path)
    name = _name(required(json_schema, "name", schema_path), field_path(schema_path, "name"))
    schema = check_schema(
        as_object(required(json_schema, "schema", schema_path), field_path(schema_path, "schema")),
        field_path(schema_path, "schema"),
    )
    strict = bool(opt_bool(json_schema, "strict", schema_path))
    opt_str(json_schema, "description", schema_path)  # validated, not used by any backend
    return ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name=name, schema=schema, strict=strict)
