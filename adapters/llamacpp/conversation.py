"""Engine messages -> the role/content dicts a chat template renders, and the model's tool calls -> `ToolUse`.

Small local chat templates (SmolLM2's among them) know nothing about tools, so tools are taught in plain text:
a system note lists each offered tool with its JSON schema and says that a call is written as the bare JSON
object ``{"name": ..., "arguments": {...}}``. History is rendered the same way, so the model sees its earlier
calls as it would have written them: an assistant tool call becomes that JSON text, and a tool result becomes a
user message naming the tool and call id (a ``tool`` role is unknown to most templates).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidRequest
from ..types import (
    ImageBlock,
    Message,
    MessageV2,
    Role,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUse,
    ToolUseBlock,
)


def v1_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Plain-text messages as template dicts."""
    return [{"role": m.role.value, "content": m.content} for m in messages]


def tools_note(tools: Sequence[ToolSpec], choice: ToolChoice) -> str:
    """The system text that offers ``tools`` and says how to call them (and whether a call is required)."""
    lines = ["You can call these tools:"]
    for tool in tools:
        description = f": {tool.description}" if tool.description else ""
        lines.append(f"- {tool.name}{description}. Arguments (JSON schema): {json.dumps(dict(tool.parameters))}")
    lines.append(
        'To call a tool, reply with only a JSON object {"name": <tool name>, "arguments": <arguments object>}.'
    )
    if choice.mode is ToolChoiceMode.NAMED:
        lines.append(f"Call the tool {choice.name} now.")
    elif choice.mode is ToolChoiceMode.REQUIRED:
        lines.append("Call one of the tools now.")
    else:
        lines.append("If no tool is needed, answer normally.")
    return "\n".join(lines)


def call_text(name: str, arguments: str) -> str:
    """A tool call as the model is told to write it."""
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:
        parsed = arguments
    return json.dumps({"name": name, "arguments": parsed}, ensure_ascii=False)


def v2_messages(
    messages: Sequence[MessageV2], tools: Sequence[ToolSpec], choice: ToolChoice
) -> list[dict[str, str]]:
    """Typed messages (with tool calls and results) as template dicts; tools offered unless choice is none."""
    call_names: dict[str, str] = {}
    rendered: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        parts: list[str] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                parts.append(block.text)
            elif isinstance(block, ToolUseBlock):
                call_names[block.id] = block.name
                parts.append(call_text(block.name, block.arguments))
            elif isinstance(block, ToolResultBlock):
                name = call_names.get(block.tool_use_id, "a tool")
                status = "failed" if block.is_error else "returned"
                parts.append(f"The tool {name} (call {block.tool_use_id}) {status}: {block.content}")
            elif isinstance(block, ImageBlock):
                raise InvalidRequest(
                    "this model does not accept images", param=f"messages[{index}].content", code="invalid_value"
                )
        role = Role.USER if message.role is Role.TOOL else message.role
        rendered.append({"role": role.value, "content": "\n".join(parts)})
    if tools and choice.mode is not ToolChoiceMode.NONE:
        note = tools_note(tools, choice)
        if rendered and rendered[0]["role"] == Role.SYSTEM.value:
            rendered[0] = {"role": Role.SYSTEM.value, "content": f"{rendered[0]['content']}\n\n{note}"}
        else:
            rendered.insert(0, {"role": Role.SYSTEM.value, "content": note})
    return rendered


def with_choice(call: ToolUse, choice: int) -> ToolUse:
    """``call`` as made by choice ``choice`` of an ``n > 1`` generation."""
    return ToolUse(call.id, call.name, call.arguments, choice)


def parse_call(text: str, tools: Sequence[ToolSpec]) -> ToolUse | None:
    """The `ToolUse` written in ``text`` if it is exactly one call of an offered tool, else ``None``."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or set(value) != {"name", "arguments"}:
        return None
    name, arguments = value["name"], value["arguments"]
    if not isinstance(arguments, dict) or name not in {tool.name for tool in tools}:
        return None
    return ToolUse(
        id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=json.dumps(arguments, ensure_ascii=False)
    )
