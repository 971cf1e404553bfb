"""Engine requests as the JSON bodies an OpenAI-compatible server takes (``/chat/completions``, ``/embeddings``).

The inverse of ``compat.openai``'s parsing, written against the engine types only (adapters never import
compat). Every engine field has one fate:

- messages: system/user/assistant/tool roles as OpenAI writes them; a user message of one text block is a plain
  string, anything else is an array of ``text`` / ``image_url`` parts (images go back into ``data:`` URLs);
  assistant tool calls become ``tool_calls``; each tool result becomes its own ``role: "tool"`` message;
- sampling: only the knobs the client set are sent (``None`` = the upstream's default). ``top_k`` and ``min_p``
  are the vLLM / llama.cpp extensions clients send through ``extra_body``; ``max_tokens`` keeps its classic
  name, which every open-source server understands;
- tools, ``tool_choice`` (only next to tools), ``parallel_tool_calls`` (only when false), ``response_format``;
- ``stream`` as the client asked (`ResolvedV2.stream`): a streaming client gets ``stream: true`` with
  ``stream_options.include_usage`` (usage is always asked for; whether the client sees it is decided by the
  client's own request, further up); a client that waits for the whole answer gets ``stream: false``, and
  the upstream answers with one ``chat.completion`` object, which always carries its usage. That is less work
  for the upstream (one JSON object instead of an SSE chunk per token) and for trinfer (one body to parse);
  the backend reads either kind of answer by its Content-Type.
"""

from __future__ import annotations

import base64
from typing import Any

from ..types import (
    EmbedResolved,
    ImageBlock,
    MessageV2,
    ResolvedV2,
    ResponseFormatKind,
    Role,
    SamplingParams,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)

JSON = dict[str, Any]

#: `SamplingParams` fields sent under the same name when set.
_SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "max_tokens",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


def chat_body(req: ResolvedV2, model: str) -> JSON:
    """The ``/chat/completions`` body for ``req``, sending ``model`` as the upstream model name."""
    body: JSON = {"model": model, "messages": [m for message in req.messages for m in _messages(message)]}
    body.update(_sampling(req.sampling))
    if req.tools:
        body["tools"] = [_tool(tool) for tool in req.tools]
        body["tool_choice"] = _tool_choice(req.tool_choice)
        if not req.parallel_tool_calls:
            body["parallel_tool_calls"] = False
    fmt = req.response_format
    if fmt.kind is ResponseFormatKind.JSON_OBJECT:
        body["response_format"] = {"type": "json_object"}
    elif fmt.kind is ResponseFormatKind.JSON_SCHEMA:
        schema: JSON = {"name": fmt.name or "response", "schema": dict(fmt.schema or {})}
        if fmt.strict:
            schema["strict"] = True
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body["stream"] = False
    return body


def embeddings_body(req: EmbedResolved, model: str) -> JSON:
    """The ``/embeddings`` body: every input as a string, float vectors (the encoding every server has)."""
    body: JSON = {"model": model, "input": list(req.inputs), "encoding_format": "float"}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    return body


def _messages(message: MessageV2) -> list[JSON]:
    """One engine message as one or more OpenAI messages (each tool result is a message of its own)."""
    results = [block for block in message.content if isinstance(block, ToolResultBlock)]
    rest = [block for block in message.content if not isinstance(block, ToolResultBlock)]
    out: list[JSON] = [
        {"role": "tool", "tool_call_id": block.tool_use_id, "content": block.content} for block in results
    ]
    if message.role is Role.ASSISTANT:
        out.append(_assistant(rest))
    elif rest or not results:
        role = "user" if message.role is Role.TOOL else message.role.value
        out.append({"role": role, "content": _content(rest)})
    return out


def _assistant(blocks: list[Any]) -> JSON:
    calls = [block for block in blocks if isinstance(block, ToolUseBlock)]
    text = "".join(block.text for block in blocks if isinstance(block, TextBlock))
    message: JSON = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in calls
        ]
    return message


def _content(blocks: list[Any]) -> str | list[JSON]:
    if all(isinstance(block, TextBlock) for block in blocks) and len(blocks) <= 1:
        return blocks[0].text if blocks else ""
    parts: list[JSON] = []
    for block in blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": _image_url(block)})
    return parts


def _image_url(block: ImageBlock) -> JSON:
    url: JSON = {"url": f"data:{block.media_type};base64,{base64.b64encode(block.data).decode('ascii')}"}
    if block.detail is not None:
        url["detail"] = block.detail
    return url


def _sampling(sampling: SamplingParams) -> JSON:
    fields: JSON = {}
    for name in _SAMPLING_FIELDS:
        value = getattr(sampling, name)
        if value is not None:
            fields[name] = value
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    if sampling.logit_bias:
        fields["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias}
    return fields


def _tool(tool: ToolSpec) -> JSON:
    function: JSON = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters:
        function["parameters"] = dict(tool.parameters)
    if tool.strict:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> str | JSON:
    if choice.mode is ToolChoiceMode.NAMED:
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode.value
