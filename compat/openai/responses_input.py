"""The Responses API's ``input`` (and ``instructions``) as engine `MessageV2` values.

``input`` is a string (one user message) or an array of items, in conversation order:

- ``message`` items, also written without ``type`` as ``{role, content}``: role ``user``, ``system``,
  ``developer`` (the same as ``system``) or ``assistant``; content a string or an array of parts: ``input_text``
  in every role, ``input_image`` (an inline ``data:`` URL, as chat's ``image_url``) in user turns,
  ``output_text`` and ``refusal`` in assistant turns (a refusal is what the assistant said, so it becomes text).
  ``input_file`` and ``input_audio`` parts are not implemented (`UnsupportedParameter`). ``id``, ``status`` and
  ``phase`` are ignored.
- ``function_call`` items (``call_id``, ``name``, ``arguments``: the JSON text of an object) are tool calls the
  assistant made; consecutive assistant text and calls form one assistant message, as chat writes them.
- ``function_call_output`` items (``call_id``, ``output``: a string or ``input_text`` parts) answer an earlier
  call; an output for a call that was never made is refused (backends such as Anthropic's reject it).
- ``reasoning`` items (a model's earlier reasoning, which clients send back) are dropped: no backend takes them.
- ``item_reference`` needs stored items and every hosted-tool item (``web_search_call``, ``computer_call``...)
  needs its tool: `UnsupportedParameter` naming ``input[i].type``.

``instructions`` becomes a system message ahead of everything else.
"""

from __future__ import annotations

from adapters.types import ContentBlock, ImageBlock, MessageV2, Role, TextBlock, ToolResultBlock, ToolUseBlock

from .._fields import (
    JSONDict,
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_type,
    invalid_value,
    item_path,
    opt_choice,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..json_body import loads_text
from .content import IMAGE_DETAILS, decode_data_url

_ROLES: dict[str, Role] = {
    "user": Role.USER,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "assistant": Role.ASSISTANT,
}
_PARTS: dict[Role, frozenset[str]] = {
    Role.USER: frozenset({"input_text", "input_image"}),
    Role.SYSTEM: frozenset({"input_text"}),
    Role.ASSISTANT: frozenset({"input_text", "output_text", "refusal"}),
}
#: Where each text part type keeps its text.
_TEXT_KEYS: dict[str, str] = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
UNSUPPORTED_PARTS = frozenset({"input_file", "input_audio"})
#: Item types that exist in the API but need stored state or a hosted tool trinfer does not have.
UNSUPPORTED_ITEMS = frozenset(
    {
        "item_reference",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "web_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
        "compaction",
    }
)
ITEM_TYPES: tuple[str, ...] = ("message", "function_call", "function_call_output", "reasoning")


def parse_input(value: object, instructions: str | None, path: str = "input") -> tuple[MessageV2, ...]:
    """``instructions`` (a system message, if given) followed by the messages of ``input``."""
    head = () if instructions is None else (MessageV2(Role.SYSTEM, (TextBlock(instructions),)),)
    if isinstance(value, str):
        return (*head, MessageV2(Role.USER, (TextBlock(value),)))
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of input items", value)
    builder = _Conversation()
    for i, item in enumerate(as_list(value, path, non_empty=True)):
        builder.add(as_object(item, item_path(path, i)), item_path(path, i))
    if not builder.messages:
        raise invalid_value(path, "expected at least one message, function call or function call output.")
    return (*head, *builder.messages)


class _Conversation:
    """Collects items into messages, joining an assistant turn's text and calls into one message."""

    def __init__(self) -> None:
        self.messages: list[MessageV2] = []
        self._calls: set[str] = set()

    def add(self, item: JSONDict, path: str) -> None:
        kind = opt_str(item, "type", path)
        if kind is None:
            kind = "message"
        if kind == "message":
            self._message(item, path)
        elif kind == "function_call":
            self._function_call(item, path)
        elif kind == "function_call_output":
            self._function_output(item, path)
        elif kind in UNSUPPORTED_ITEMS:
            raise UnsupportedParameter(
                f"Input items of type {kind!r} are not supported by this server (it stores nothing and has no "
                "hosted tools).",
                param=field_path(path, "type"),
            )
        elif kind != "reasoning":
            expected = ", ".join(repr(t) for t in ITEM_TYPES)
            raise invalid_value(field_path(path, "type"), f"expected one of {expected}, but got {kind[:64]!r}.")

    def _append_assistant(self, blocks: tuple[ContentBlock, ...]) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role is Role.ASSISTANT:
            self.messages[-1] = MessageV2(Role.ASSISTANT, last.content + blocks)
        else:
            self.messages.append(MessageV2(Role.ASSISTANT, blocks))

    def _message(self, item: JSONDict, path: str) -> None:
        role_path = field_path(path, "role")
        role_name = as_str(required(item, "role", path), role_path)
        if role_name not in _ROLES:
            expected = ", ".join(repr(r) for r in _ROLES)
            raise invalid_value(role_path, f"expected one of {expected}, but got {role_name[:64]!r}.")
        role = _ROLES[role_name]
        blocks = _content(required(item, "content", path), field_path(path, "content"), role)
        if role is Role.ASSISTANT:
            self._append_assistant(blocks)
        else:
            self.messages.append(MessageV2(role, blocks))

    def _function_call(self, item: JSONDict, path: str) -> None:
        call_id = as_str(required(item, "call_id", path), field_path(path, "call_id"), non_empty=True)
        name = as_str(required(item, "name", path), field_path(path, "name"), non_empty=True)
        arguments_path = field_path(path, "arguments")
        arguments = as_str(required(item, "arguments", path), arguments_path)
        if not isinstance(loads_text(arguments, arguments_path), dict):
            raise invalid_value(arguments_path, "expected the JSON text of an object.")
        self._calls.add(call_id)
        self._append_assistant((ToolUseBlock(id=call_id, name=name, arguments=arguments),))

    def _function_output(self, item: JSONDict, path: str) -> None:
        id_path = field_path(path, "call_id")
        call_id = as_str(required(item, "call_id", path), id_path)
        if call_id not in self._calls:
            raise invalid_value(
                id_path,
                f"{call_id[:64]!r} answers no function call: a function_call_output must follow the "
                "function_call item with the same call_id.",
            )
        output_path = field_path(path, "output")
        output = required(item, "output", path)
        if isinstance(output, str):
            text = output
        else:
            if not isinstance(output, list):
                raise invalid_type(output_path, "a string or an array of content parts", output)
            parts = _content(output, output_path, Role.SYSTEM)  # text parts only
            text = MessageV2(Role.TOOL, parts).text()
        self.messages.append(MessageV2(Role.TOOL, (ToolResultBlock(tool_use_id=call_id, content=text),)))


def _content(value: object, path: str, role: Role) -> tuple[ContentBlock, ...]:
    if isinstance(value, str):
        return (TextBlock(value),)
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of content parts", value)
    parts = as_list(value, path, non_empty=True)
    return tuple(
        _part(as_object(part, item_path(path, j)), item_path(path, j), role) for j, part in enumerate(parts)
    )


def _part(part: JSONDict, path: str, role: Role) -> ContentBlock:
    type_path = field_path(path, "type")
    kind = as_str(required(part, "type", path), type_path)
    allowed = _PARTS[role]
    if kind not in allowed:
        if kind in UNSUPPORTED_PARTS:
            raise UnsupportedParameter(
                f"Content parts of type {kind!r} are not supported by this server.", param=type_path
            )
        expected = ", ".join(repr(k) for k in sorted(allowed))
        raise invalid_value(type_path, f"expected one of {expected}, but got {kind[:64]!r}.")
    if kind == "input_image":
        return _image(part, path)
    key = _TEXT_KEYS[kind]
    return TextBlock(as_str(required(part, key, path), field_path(path, key)))


def _image(part: JSONDict, path: str) -> ImageBlock:
    detail = opt_choice(part, "detail", IMAGE_DETAILS, path)
    if part.get("file_id") is not None:
        raise UnsupportedParameter(
            "Images by file_id are not supported (this server stores no files); send an inline data: URL.",
            param=field_path(path, "file_id"),
        )
    url_path = field_path(path, "image_url")
    url = as_str(required(part, "image_url", path), url_path)
    media_type, data = decode_data_url(url, url_path)
    return ImageBlock(media_type=media_type, data=data, detail=detail)
