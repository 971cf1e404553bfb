"""Anthropic ``system`` and ``messages`` as engine `MessageV2` values.

Theory of operation:
- ``system`` is a string or an array of ``text`` blocks; it becomes one `Role.SYSTEM` message at the front (none
  when it is empty).
- A ``user`` message holds ``text``, ``image`` and ``tool_result`` blocks. Each ``tool_result`` becomes its own
  `Role.TOOL` message holding one `ToolResultBlock` (the engine's form of a tool result, the one every backend
  reads), and each run of text and image blocks between them one `Role.USER` message, so the order is kept.
  A result must answer a ``tool_use`` of an earlier assistant message, as Anthropic requires.
- An ``assistant`` message holds ``text``, ``tool_use``, ``thinking`` and ``redacted_thinking`` blocks, kept in
  their order. Thinking blocks sent back by a client become `ThinkingBlock` (text and ``signature``, byte for
  byte) and `RedactedThinkingBlock` (its ``data``): a backend that signs its reasoning needs them back, with
  the signature it wrote, to continue a tool loop. Backends that cannot take them never see them
  (`adapters.dispatch` removes them, and an assistant turn left empty by that).
- ``cache_control`` is accepted on every block and ignored (trinfer's backends reuse prompt prefixes on their
  own); ``citations`` on text blocks are ignored.
- Images must carry a ``base64`` source of one of `IMAGE_MEDIA_TYPES`. ``url`` and ``file`` sources would make
  trinfer fetch something on a client's behalf, which it never does: 400 ``unsupported_parameter``. So are
  documents, search results and the blocks of Anthropic's server-side tools, which the engine cannot represent.
"""

from __future__ import annotations

import base64
import binascii
import json

from adapters.types import (
    ContentBlock,
    ImageBlock,
    MessageV2,
    RedactedThinkingBlock,
    Role,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

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
from ..errors import RequestValidationError, UnsupportedParameter

IMAGE_MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/webp")

USER_BLOCKS = frozenset({"text", "image", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})
TOOL_RESULT_BLOCKS = frozenset({"text"})
#: Block types Anthropic documents that the engine cannot represent.
UNSUPPORTED_BLOCKS = frozenset(
    {
        "document",
        "search_result",
        "container_upload",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)


def parse_system(value: object, path: str = "system") -> tuple[MessageV2, ...]:
    """``system`` (absent, a string or text blocks) as zero or one system message."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (MessageV2(Role.SYSTEM, (TextBlock(value),)),) if value else ()
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of text blocks", value)
    blocks: list[ContentBlock] = []
    for i, item in enumerate(value):
        block_path = item_path(path, i)
        block = _block_object(item, block_path)
        kind = as_str(required(block, "type", block_path), field_path(block_path, "type"))
        if kind != "text":
            raise invalid_value(field_path(block_path, "type"), f"expected 'text', but got {kind[:64]!r}.")
        blocks.append(_text(block, block_path))
    return (MessageV2(Role.SYSTEM, tuple(blocks)),) if blocks else ()


def parse_messages(value: object, path: str = "messages") -> tuple[MessageV2, ...]:
    """Validate ``messages`` (a non-empty array of user and assistant turns) and convert them, in order."""
    tool_use_ids: set[str] = set()
    messages: list[MessageV2] = []
    for i, item in enumerate(as_list(value, path, non_empty=True)):
        message_path = item_path(path, i)
        message = as_object(item, message_path)
        role_path = field_path(message_path, "role")
        role = as_str(required(message, "role", message_path), role_path)
        if role not in ("user", "assistant"):
            raise invalid_value(role_path, f"expected 'user' or 'assistant', but got {role[:64]!r}.")
        content_path = field_path(message_path, "content")
        content = required(message, "content", message_path)
        if isinstance(content, str):
            messages.append(MessageV2(Role.USER if role == "user" else Role.ASSISTANT, (TextBlock(content),)))
        elif role == "user":
            messages.extend(_user_turn(content, content_path, tool_use_ids))
        else:
            messages.append(MessageV2(Role.ASSISTANT, _assistant_blocks(content, content_path, tool_use_ids)))
    return tuple(messages)


def _blocks(value: object, path: str) -> list[tuple[str, JSONDict, str]]:
    """(type, block, path) of each block of a content array."""
    if not isinstance(value, list):
        raise invalid_type(path, "a string or an array of content blocks", value)
    result: list[tuple[str, JSONDict, str]] = []
    for j, item in enumerate(as_list(value, path, non_empty=True)):
        block_path = item_path(path, j)
        block = _block_object(item, block_path)
        result.append(
            (as_str(required(block, "type", block_path), field_path(block_path, "type")), block, block_path)
        )
    return result


def _block_object(value: object, path: str) -> JSONDict:
    block = as_object(value, path)
    opt_object(block, "cache_control", path)  # accepted and ignored
    return block


def _check_kind(kind: str, path: str, allowed: frozenset[str]) -> None:
    if kind in allowed:
        return
    type_path = field_path(path, "type")
    if kind in UNSUPPORTED_BLOCKS:
        raise UnsupportedParameter(
            f"Content blocks of type '{kind}' are not supported by this server.", param=type_path
        )
    expected = ", ".join(repr(k) for k in sorted(allowed))
    raise invalid_value(type_path, f"expected one of {expected}, but got {kind[:64]!r}.")


def _user_turn(value: object, path: str, tool_use_ids: set[str]) -> list[MessageV2]:
    messages: list[MessageV2] = []
    pending: list[ContentBlock] = []
    for kind, block, block_path in _blocks(value, path):
        _check_kind(kind, block_path, USER_BLOCKS)
        if kind == "tool_result":
            if pending:
                messages.append(MessageV2(Role.USER, tuple(pending)))
                pending = []
            messages.append(MessageV2(Role.TOOL, (_tool_result(block, block_path, tool_use_ids),)))
        elif kind == "image":
            pending.append(_image(block, block_path))
        else:
            pending.append(_text(block, block_path))
    if pending:
        messages.append(MessageV2(Role.USER, tuple(pending)))
    return messages


def _assistant_blocks(value: object, path: str, tool_use_ids: set[str]) -> tuple[ContentBlock, ...]:
    blocks: list[ContentBlock] = []
    for kind, block, block_path in _blocks(value, path):
        _check_kind(kind, block_path, ASSISTANT_BLOCKS)
        if kind == "tool_use":
            use = _tool_use(block, block_path)
            tool_use_ids.add(use.id)
            blocks.append(use)
        elif kind == "thinking":
            text = as_str(required(block, "thinking", block_path), field_path(block_path, "thinking"))
            blocks.append(ThinkingBlock(text, opt_str(block, "signature", block_path) or ""))
        elif kind == "redacted_thinking":
            blocks.append(
                RedactedThinkingBlock(as_str(required(block, "data", block_path), field_path(block_path, "data")))
            )
        else:
            blocks.append(_text(block, block_path))
    return tuple(blocks)


def _text(block: JSONDict, path: str) -> TextBlock:
    return TextBlock(as_str(required(block, "text", path), field_path(path, "text")))


def _tool_use(block: JSONDict, path: str) -> ToolUseBlock:
    use_id = as_str(required(block, "id", path), field_path(path, "id"), non_empty=True)
    name = as_str(required(block, "name", path), field_path(path, "name"), non_empty=True)
    arguments = as_object(required(block, "input", path), field_path(path, "input"))
    return ToolUseBlock(use_id, name, json.dumps(arguments, ensure_ascii=False, separators=(",", ":")))


def _tool_result(block: JSONDict, path: str, tool_use_ids: set[str]) -> ToolResultBlock:
    id_path = field_path(path, "tool_use_id")
    use_id = as_str(required(block, "tool_use_id", path), id_path)
    if use_id not in tool_use_ids:
        raise invalid_value(
            id_path,
            f"{use_id[:64]!r} does not answer a tool call: each tool_result block must have a corresponding "
            "tool_use block in an earlier assistant message.",
        )
    content = block.get("content")
    content_path = field_path(path, "content")
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        parts: list[str] = []
        for kind, part, part_path in _blocks(content, content_path):
            if kind == "image":
                raise UnsupportedParameter(
                    "Images inside tool_result blocks are not supported by this server.",
                    param=field_path(part_path, "type"),
                )
            _check_kind(kind, part_path, TOOL_RESULT_BLOCKS)
            parts.append(_text(part, part_path).text)
        text = "\n".join(parts)
    return ToolResultBlock(use_id, text, is_error=bool(opt_bool(block, "is_error", path)))


def _image(block: JSONDict, path: str) -> ImageBlock:
    source_path = field_path(path, "source")
    source = as_object(required(block, "source", path), source_path)
    kind_path = field_path(source_path, "type")
    kind = as_str(required(source, "type", source_path), kind_path)
    if kind in ("url", "file"):
        raise UnsupportedParameter(
            f"Image sources of type '{kind}' are not fetched by this server; send the image as a base64 source.",
            param=kind_path,
        )
    if kind != "base64":
        raise invalid_value(kind_path, f"expected 'base64', but got {kind[:64]!r}.")
    media_path = field_path(source_path, "media_type")
    media_type = as_str(required(source, "media_type", source_path), media_path)
    if media_type not in IMAGE_MEDIA_TYPES:
        allowed = ", ".join(repr(t) for t in IMAGE_MEDIA_TYPES)
        raise invalid_value(media_path, f"expected one of {allowed}, but got {media_type[:64]!r}.")
    data_path = field_path(source_path, "data")
    payload = as_str(required(source, "data", source_path), data_path)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestValidationError("The image data is not valid base64.", param=data_path) from exc
    if not data:
        raise invalid_value(data_path, "the image is empty.")
    return ImageBlock(media_type=media_type, data=data)
