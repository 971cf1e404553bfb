"""The ``messages`` array as engine `MessageV2` values.

Roles: ``system`` and ``developer`` (the newer name for the same thing) become `Role.SYSTEM`; ``user`` and
``assistant`` keep their role; ``tool`` becomes a `Role.TOOL` message holding one `ToolResultBlock`. An
assistant message's ``tool_calls`` become `ToolUseBlock`s after its text, and its ``content`` may be null only
when it has tool calls. A ``tool`` message must answer a tool call made by an earlier assistant message, as
OpenAI requires (backends such as Anthropic's reject orphan results). The legacy ``function`` role and
assistant ``function_call`` / ``audio`` are not implemented (`UnsupportedParameter`). ``name`` is ignored.
"""

from __future__ import annotations

from adapters.types import ContentBlock, MessageV2, Role, TextBlock, ToolResultBlock, ToolUseBlock

from .._fields import (
    JSONDict,
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_type,
    invalid_value,
    item_path,
    required,
)
from ..errors import UnsupportedParameter
from ..json_body import loads_text
from .content import ASSISTANT_PARTS, TEXT_PARTS, USER_PARTS, parse_content

_ROLES: dict[str, Role] = {"system": Role.SYSTEM, "developer": Role.SYSTEM, "user": Role.USER}
ROLE_NAMES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool")


def parse_messages(value: object, path: str = "messages") -> tuple[MessageV2, ...]:
    """Validate ``messages`` (a non-empty array) and convert every message, in order."""
    items = as_list(value, path, non_empty=True)
    tool_call_ids: set[str] = set()
    messages: list[MessageV2] = []
    for i, item in enumerate(items):
        message_path = item_path(path, i)
        message = as_object(item, message_path)
        role = as_str(required(message, "role", message_path), field_path(message_path, "role"))
        if role in _ROLES:
            content = parse_content(
                required(message, "content", message_path),
                field_path(message_path, "content"),
                USER_PARTS if role == "user" else TEXT_PARTS,
            )
            messages.append(MessageV2(_ROLES[role], content))
        elif role == "assistant":
            messages.append(_parse_assistant(message, message_path, tool_call_ids))
        elif role == "tool":
            messages.append(_parse_tool_result(message, message_path, tool_call_ids))
        elif role == "function":
            raise UnsupportedParameter(
                "Messages with role 'function' (the legacy function-calling API) are not supported; "
                "use role 'tool' with 'tool_call_id'.",
                param=field_path(message_path, "role"),
            )
        else:
            expected = ", ".join(repr(r) for r in ROLE_NAMES)
            raise invalid_value(
                field_path(message_path, "role"), f"expected one of {expected}, but got {role[:64]!r}."
            )
    return tuple(messages)


def _parse_assistant(message: JSONDict, path: str, tool_call_ids: set[str]) -> MessageV2:
    for legacy in ("function_call", "audio"):
        if message.get(legacy) is not None:
            raise UnsupportedParameter(
                f"Assistant messages with '{legacy}' are not supported by this server.",
                param=field_path(path, legacy),
            )
    calls = message.get("tool_calls")
    uses = () if calls is None else _parse_tool_calls(calls, field_path(path, "tool_calls"))
    content = message.get("content")
    blocks: tuple[ContentBlock, ...] = ()
    if content is None:
        if not uses:
            raise invalid_type(field_path(path, "content"), "a string or an array of content parts", None)
    else:
        blocks = parse_content(content, field_path(path, "content"), ASSISTANT_PARTS)
        if uses and blocks == (TextBlock(""),):
            blocks = ()  # "content": "" next to tool calls carries nothing
    tool_call_ids.update(use.id for use in uses)
    return MessageV2(Role.ASSISTANT, blocks + uses)


def _parse_tool_calls(value: object, path: str) -> tuple[ToolUseBlock, ...]:
    uses: list[ToolUseBlock] = []
    for j, item in enumerate(as_list(value, path, non_empty=True)):
        call_path = item_path(path, j)
        call = as_object(item, call_path)
        call_id = as_str(required(call, "id", call_path), field_path(call_path, "id"), non_empty=True)
        kind = as_str(required(call, "type", call_path), field_path(call_path, "type"))
        if kind == "custom":
            raise UnsupportedParameter("Custom tool calls are not supported.", param=field_path(call_path, "type"))
        if kind != "function":
            raise invalid_value(field_path(call_path, "type"), f"expected 'function', but got {kind[:64]!r}.")
        function_path = field_path(call_path, "function")
        function = as_object(required(call, "function", call_path), function_path)
        name = as_str(required(function, "name", function_path), field_path(function_path, "name"), non_empty=True)
        arguments_path = field_path(function_path, "arguments")
        arguments = as_str(required(function, "arguments", function_path), arguments_path)
        if not isinstance(loads_text(arguments, arguments_path), dict):
            raise invalid_value(arguments_path, "expected the JSON text of an object.")
        uses.append(ToolUseBlock(id=call_id, name=name, arguments=arguments))
    return tuple(uses)


def _parse_tool_result(message: JSONDict, path: str, tool_call_ids: set[str]) -> MessageV2:
    id_path = field_path(path, "tool_call_id")
    tool_call_id = as_str(required(message, "tool_call_id", path), id_path)
    if tool_call_id not in tool_call_ids:
        raise invalid_value(
            id_path,
            f"{tool_call_id[:64]!r} does not answer a tool call: a message with role 'tool' must respond to "
            "a preceding assistant message with 'tool_calls'.",
        )
    blocks = parse_content(required(message, "content", path), field_path(path, "content"), TEXT_PARTS)
    text = MessageV2(Role.TOOL, blocks).text()  # tool content is text parts only
    return MessageV2(Role.TOOL, (ToolResultBlock(tool_use_id=tool_call_id, content=text),))
