"""Anthropic ``tools`` and ``tool_choice`` as engine values.

Only client tools exist here: a tool is ``{name, description?, input_schema}`` (``type`` absent or
``"custom"``), and its ``input_schema`` must be a JSON schema of type ``object``, as Anthropic requires. A
``type`` naming one of Anthropic's server tools (``web_search_20250305``, ``bash_20250124``,
``text_editor_...``, ``computer_...``, ``code_execution_...``) asks for work the Anthropic platform does on its
side; trinfer cannot do it, so it is 400 ``unsupported_parameter`` naming ``tools[i].type``. Names follow
Anthropic's rule (`NAME_PATTERN`) and must be unique. Every ``input_schema`` is checked for shape by
`compat.schema.check_schema`, as the OpenAI dialects check theirs, so a malformed schema is a 400 naming its
place (``tools[0].input_schema.properties.city.type``) instead of a crash in a backend that walks it.

``tool_choice``: ``auto`` (the default), ``any`` (some tool must be called: the engine's ``required``),
``tool`` with a ``name`` among the tools (the engine's named choice) and ``none``;
``disable_parallel_tool_use: true`` asks for at most one call (the engine's ``parallel_tool_calls: false``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters.types import ToolChoice, ToolChoiceMode, ToolSpec

from .._fields import (
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_value,
    item_path,
    opt_bool,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..schema import check_schema

NAME_PATTERN = re.compile(r"[a-zA-Z0-9_-]{1,128}")

_MODES: dict[str, ToolChoiceMode] = {
    "auto": ToolChoiceMode.AUTO,
    "any": ToolChoiceMode.REQUIRED,
    "tool": ToolChoiceMode.NAMED,
    "none": ToolChoiceMode.NONE,
}


@dataclass(frozen=True, slots=True)
class ToolChoiceSpec:
    """``tool_choice`` as the engine reads it: the choice and whether several calls may come at once."""

    choice: ToolChoice
    parallel: bool = True


def parse_tools(value: object, path: str = "tools") -> tuple[ToolSpec, ...]:
    """An array (possibly empty) of client tools with unique names."""
    specs: list[ToolSpec] = []
    for i, item in enumerate(as_list(value, path)):
        tool_path = item_path(path, i)
        tool = as_object(item, tool_path)
        kind = opt_str(tool, "type", tool_path)
        if kind is not None and kind != "custom":
            raise UnsupportedParameter(
                f"Tool type {kind[:64]!r} is an Anthropic server tool, which this server does not run; "
                "offer client tools with an 'input_schema' instead.",
                param=field_path(tool_path, "type"),
            )
        name_path = field_path(tool_path, "name")
        name = as_str(required(tool, "name", tool_path), name_path)
        if not NAME_PATTERN.fullmatch(name):
            raise invalid_value(
                name_path, "expected a name of 1 to 128 characters from a-z, A-Z, 0-9, underscore and dash."
            )
        if any(spec.name == name for spec in specs):
            raise invalid_value(name_path, f"tool names must be unique; {name!r} is given twice.")
        schema_path = field_path(tool_path, "input_schema")
        schema = as_object(required(tool, "input_schema", tool_path), schema_path)
        if schema.get("type") != "object":
            raise invalid_value(
                field_path(schema_path, "type"), "the input_schema of a tool must have type 'object'."
            )
        check_schema(schema, schema_path)
        opt_object(tool, "cache_control", tool_path)  # accepted and ignored
        specs.append(
            ToolSpec(
                name=name,
                description=opt_str(tool, "description", tool_path),
                parameters=schema,
                strict=bool(opt_bool(tool, "strict", tool_path)),
            )
        )
    return tuple(specs)


def parse_tool_choice(value: object, tools: tuple[ToolSpec, ...], path: str = "tool_choice") -> ToolChoiceSpec:
    """``tool_choice`` (absent: ``auto``); ``any`` and ``tool`` need tools, ``tool`` one of them by name."""
    if value is None:
        return ToolChoiceSpec(ToolChoice())
    choice = as_object(value, path)
    type_path = field_path(path, "type")
    kind = as_str(required(choice, "type", path), type_path)
    if kind not in _MODES:
        raise invalid_value(type_path, f"expected 'auto', 'any', 'tool' or 'none', but got {kind[:64]!r}.")
    mode = _MODES[kind]
    if mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED) and not tools:
        raise invalid_value(type_path, f"tool_choice {kind!r} needs at least one tool in 'tools'.")
    name: str | None = None
    if mode is ToolChoiceMode.NAMED:
        name_path = field_path(path, "name")
        name = as_str(required(choice, "name", path), name_path)
        if not any(spec.name == name for spec in tools):
            raise invalid_value(name_path, f"{name[:64]!r} is not one of the tools given in 'tools'.")
    disable = bool(opt_bool(choice, "disable_parallel_tool_use", path))
    return ToolChoiceSpec(ToolChoice(mode, name), parallel=not disable)
