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
from collections.abc import Sequence

from adapters.types import ResponseFormat, ResponseFormatKind, ToolChoice, ToolChoiceMode, ToolSpec

from .._fields import (
    JSONDict,
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


def parse_tools(value: object, path: str = "tools", *, flat: bool = False) -> tuple[ToolSpec, ...]:
    """A non-empty array of function tools with unique names.

    Chat's shape is ``{"type": "function", "function": {name, ...}}``; with ``flat`` (the Responses API) it is
    ``{"type": "function", "name", ...}``, ``strict`` defaults to true as OpenAI's does there, and every other
    tool type (``web_search``, ``file_search``, ``mcp``...: hosted tools) is `UnsupportedParameter`.
    """
    specs: list[ToolSpec] = []
    # OpenAI refuses an empty array in chat and takes one in the Responses API.
    for i, item in enumerate(as_list(value, path, non_empty=not flat)):
        tool_path = item_path(path, i)
        tool = as_object(item, tool_path)
        kind = as_str(required(tool, "type", tool_path), field_path(tool_path, "type"))
        if kind != "function":
            if flat or kind == "custom":
                raise UnsupportedParameter(
                    f"Tools of type {kind[:64]!r} are not supported by this server; use function tools.",
                    param=field_path(tool_path, "type"),
                )
            raise invalid_value(field_path(tool_path, "type"), f"expected 'function', but got {kind[:64]!r}.")
        if flat:
            specs.append(_function_spec(tool, tool_path, specs, strict_default=True))
            continue
        function_path = field_path(tool_path, "function")
        function = as_object(required(tool, "function", tool_path), function_path)
        specs.append(_function_spec(function, function_path, specs))
    return tuple(specs)


def _function_spec(
    function: JSONDict, path: str, earlier: Sequence[ToolSpec], *, strict_default: bool = False
) -> ToolSpec:
    """The function described by ``function`` (``name``, ``description``, ``parameters``, ``strict``) at
    ``path``; its name must differ from every tool in ``earlier``. Chat nests this object under ``function``,
    the Responses API writes it flat, so both dialects share this reader.
    """
    name_path = field_path(path, "name")
    name = _name(required(function, "name", path), name_path)
    if any(spec.name == name for spec in earlier):
        raise invalid_value(name_path, f"tool names must be unique; {name!r} is given twice.")
    parameters = opt_object(function, "parameters", path)
    if parameters is not None:
        check_schema(parameters, field_path(path, "parameters"))
    if parameters is not None and "type" in parameters and parameters["type"] != "object":
        # A call's arguments are a JSON object; OpenAI refuses any other parameters type the same way.
        raise invalid_value(
            field_path(path, "parameters"),
            f"a function's parameters must be a JSON Schema of type 'object', not {parameters['type']!r:.64}.",
        )
    strict = opt_bool(function, "strict", path)
    return ToolSpec(
        name=name,
        description=opt_str(function, "description", path),
        parameters={} if parameters is None else parameters,
        strict=strict_default if strict is None else strict,
    )


def _choice_mode(value: str, tools: tuple[ToolSpec, ...], path: str) -> ToolChoice:
    """A ``tool_choice`` given as a string: ``auto``, ``none`` or ``required`` (which needs a tool)."""
    if value not in _CHOICE_MODES:
        raise invalid_value(path, f"expected 'auto', 'none', 'required' or an object, but got {value[:64]!r}.")
    if value == "required" and not tools:
        raise invalid_value(path, "'required' needs at least one tool in 'tools'.")
    return ToolChoice(_CHOICE_MODES[value])


def _named_choice(name: str, tools: tuple[ToolSpec, ...], path: str) -> ToolChoice:
    """A ``tool_choice`` naming one function, which must be among ``tools``."""
    if not any(spec.name == name for spec in tools):
        raise invalid_value(path, f"{name[:64]!r} is not one of the tools given in 'tools'.")
    return ToolChoice(ToolChoiceMode.NAMED, name)


def parse_tool_choice(
    value: object, tools: tuple[ToolSpec, ...], path: str = "tool_choice", *, flat: bool = False
) -> ToolChoice:
    """``auto`` (the default), ``none``, ``required`` or a named function that is among ``tools``.

    Chat names it ``{"type": "function", "function": {"name"}}``; with ``flat`` (the Responses API)
    ``{"type": "function", "name"}``, and every other choice type (hosted tools, ``mcp``...) is
    `UnsupportedParameter`, as ``allowed_tools`` and ``custom`` are in both.
    """
    if value is None:
        return ToolChoice()
    if isinstance(value, str):
        return _choice_mode(value, tools, path)
    if not isinstance(value, dict):
        raise invalid_type(path, "a string or an object", value)
    kind = as_str(required(value, "type", path), field_path(path, "type"))
    if kind != "function":
        if flat or kind in ("allowed_tools", "custom"):
            raise UnsupportedParameter(
                f"tool_choice of type {kind[:64]!r} is not supported.", param=field_path(path, "type")
            )
        raise invalid_value(field_path(path, "type"), f"expected 'function', but got {kind[:64]!r}.")
    holder, holder_path = value, path
    if not flat:
        holder_path = field_path(path, "function")
        holder = as_object(required(value, "function", path), holder_path)
    name_path = field_path(holder_path, "name")
    return _named_choice(as_str(required(holder, "name", holder_path), name_path), tools, name_path)


def parse_response_format(value: object, path: str = "response_format") -> ResponseFormat:
    """``text`` (the default), ``json_object``, or ``json_schema`` with a name and a schema object."""
    if value is None:
        return ResponseFormat()
    response_format = as_object(value, path)
    kind = format_kind(response_format, path)
    if kind is not ResponseFormatKind.JSON_SCHEMA:
        return ResponseFormat(kind)
    schema_path = field_path(path, "json_schema")
    return json_schema_format(as_object(required(response_format, "json_schema", path), schema_path), schema_path)


def format_kind(value: JSONDict, path: str) -> ResponseFormatKind:
    """The ``type`` of a response format object: ``text``, ``json_object`` or ``json_schema``."""
    kind = as_str(required(value, "type", path), field_path(path, "type"))
    if kind not in _FORMATS:
        raise invalid_value(
            field_path(path, "type"), f"expected 'text', 'json_object' or 'json_schema', but got {kind[:64]!r}."
        )
    return _FORMATS[kind]


def json_schema_format(json_schema: JSONDict, path: str) -> ResponseFormat:
    """A ``json_schema`` format's ``name``, ``schema``, ``strict`` and ``description`` at ``path`` (chat nests
    them under ``json_schema``, the Responses API's ``text.format`` holds them flat)."""
    name = _name(required(json_schema, "name", path), field_path(path, "name"))
    schema_path = field_path(path, "schema")
    schema = check_schema(as_object(required(json_schema, "schema", path), schema_path), schema_path)
    strict = bool(opt_bool(json_schema, "strict", path))
    opt_str(json_schema, "description", path)  # validated, not used by any backend
    return ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name=name, schema=schema, strict=strict)
