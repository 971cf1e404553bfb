"""Engine request (`ResolvedV2`) -> Anthropic Messages API request body. Pure: no I/O, no SDK client.

Theory of operation, field by field (docs/anthropic.md has the same table for users):
- ``system`` messages, wherever they appear, are joined (blank line between) into the top-level ``system``
  string; ``response_format: json_object`` adds an instruction there (the Messages API has no JSON mode).
- ``user``/``assistant`` messages keep their order; ``tool`` messages become ``tool_result`` blocks of a user
  turn. Consecutive turns of one role are merged into one turn so upstream sees strict alternation (tool
  results first, as the API requires). Empty text blocks are dropped (the API refuses them); a turn left
  empty is dropped.
- images (already decoded from ``data:`` URLs by compat) -> base64 ``image`` blocks; assistant tool calls ->
  ``tool_use`` blocks with the arguments parsed back into an object; reasoning of earlier turns -> ``thinking``
  blocks with their signature and ``redacted_thinking`` blocks with their data, unchanged and in place (the API
  checks the signature, and a tool loop with thinking on needs the turn's thinking before its ``tool_use``).
- tools -> ``tools`` (``parameters`` -> ``input_schema``); tool_choice auto/none/required/named ->
  auto/none/any/tool; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
- ``response_format: json_schema`` -> structured outputs (``output_config.format``), the schema passed through
  the SDK's `transform_schema` so it fits the subset the API accepts (unsupported keywords move into
  descriptions).
- temperature, top_p, top_k, stop -> temperature, top_p, top_k, stop_sequences; max_tokens (or the backend's
  ``max_tokens_default``, since the API requires it) -> max_tokens. ``seed`` is ignored (OpenAI documents it
  as best effort). Penalties, ``logit_bias`` and ``min_p`` have no Anthropic equivalent: a non-neutral value
  is refused with 400 ``unsupported_parameter`` rather than silently dropped.
- the request's own ``thinking`` (`ThinkingConfig`, from an Anthropic client) is sent as it is; without one,
  the backend's ``thinking`` option decides.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from anthropic import transform_schema

from ..errors import InvalidRequest
from ..type_lists import expand_type_lists
from ..types import (
    ContentBlock,
    ImageBlock,
    RedactedThinkingBlock,
    ResolvedV2,
    ResponseFormatKind,
    Role,
    SamplingParams,
    TextBlock,
    ThinkingBlock,
    ThinkingConfig,
    ThinkingMode,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    ToolUseBlock,
)
from .config import MIN_THINKING_BUDGET, AnthropicOptions

#: Image types the Messages API accepts.
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single JSON object and nothing else: no prose, no code fences, no text before or after it."
)

Body = dict[str, Any]


def build_request(req: ResolvedV2, options: AnthropicOptions) -> Body:
    """The Messages API body (without ``stream``) for ``req``. Raises `InvalidRequest` naming the field."""
    _check_sampling(req.sampling)
    max_tokens = req.sampling.max_tokens if req.sampling.max_tokens is not None else options.max_tokens_default
    body: Body = {
        "model": options.upstream_model(req.model),
        "max_tokens": max_tokens,
        "messages": _messages(req),
    }
    system = _system(req)
    if system:
        body["system"] = system
    body.update(_sampling(req.sampling))
    if req.tools:
        body["tools"] = [_tool(tool) for tool in req.tools]
        body["tool_choice"] = _tool_choice(req.tool_choice, parallel=req.parallel_tool_calls)
    elif req.tool_choice.mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.NAMED):
        raise InvalidRequest("tool_choice requires at least one tool in 'tools'", param="tool_choice")
    if req.response_format.kind is ResponseFormatKind.JSON_SCHEMA:
        body["output_config"] = {"format": {"type": "json_schema", "schema": _schema(req)}}
    thinking = _thinking(options, max_tokens) if req.thinking is None else _requested_thinking(req.thinking)
    if thinking is not None:
        body["thinking"] = thinking
    return body


# --- system and turns -------------------------------------------------------------------------------------


def _system(req: ResolvedV2) -> str:
    parts = [m.text() for m in req.messages if m.role is Role.SYSTEM]
    if req.response_format.kind is ResponseFormatKind.JSON_OBJECT:
        parts.append(JSON_OBJECT_INSTRUCTION)
    return "\n\n".join(p for p in parts if p)


def _messages(req: ResolvedV2) -> list[Body]:
    turns: list[Body] = []
    for index, message in enumerate(req.messages):
        if message.role is Role.SYSTEM:
            continue
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = [
            block
            for position, content in enumerate(message.content)
            if (block := _block(content, f"messages[{index}].content[{position}]", role)) is not None
        ]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise InvalidRequest(
            "messages must contain at least one non-empty user or assistant message", param="messages"
        )
    return turns


def _block(block: ContentBlock, param: str, role: str) -> Body | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text} if block.text else None
    if isinstance(block, ImageBlock):
        if role != "user":
            raise InvalidRequest("images are only accepted in user messages", param=param)
        if block.media_type not in IMAGE_MEDIA_TYPES:
            raise InvalidRequest(
                f"image type {block.media_type!r} is not supported by Anthropic models "
                f"(use one of {', '.join(sorted(IMAGE_MEDIA_TYPES))})",
                param=param,
            )
        data = base64.b64encode(block.data).decode("ascii")
        return {"type": "image", "source": {"type": "base64", "media_type": block.media_type, "data": data}}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": _arguments(block, param)}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if isinstance(block, RedactedThinkingBlock):
        return {"type": "redacted_thinking", "data": block.data}
    result: Body = {"type": "tool_result", "tool_use_id": block.tool_use_id}
    if block.content:
        result["content"] = block.content
    if block.is_error:
        result["is_error"] = True
    return result


def _arguments(block: ToolUseBlock, param: str) -> dict[str, Any]:
    try:
        value = json.loads(block.arguments) if block.arguments.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param=param)
    return value


# --- tools ------------------------------------------------------------------------------------------------


def _tool(tool: ToolSpec) -> Body:
    schema = dict(tool.parameters)
    schema.setdefault("type", "object")
    result: Body = {"name": tool.name, "input_schema": schema}
    if tool.description:
        result["description"] = tool.description
    if tool.strict:
        result["strict"] = True
    return result


_TOOL_CHOICE_TYPES = {
    ToolChoiceMode.AUTO: "auto",
    ToolChoiceMode.NONE: "none",
    ToolChoiceMode.REQUIRED: "any",
    ToolChoiceMode.NAMED: "tool",
}


def _tool_choice(choice: ToolChoice, *, parallel: bool) -> Body:
    result: Body = {"type": _TOOL_CHOICE_TYPES[choice.mode]}
    if choice.mode is ToolChoiceMode.NAMED:
        result["name"] = choice.name
    if not parallel and choice.mode is not ToolChoiceMode.NONE:
        result["disable_parallel_tool_use"] = True
    return result


def _schema(req: ResolvedV2) -> dict[str, Any]:
    schema = req.response_format.schema
    try:
        return transform_schema(expand_type_lists(schema) if schema is not None else {"type": "object"})
    except Exception as exc:  # a pure function of the client's schema: whatever it raises, the schema is at fault
        # (it raises TypeError on a boolean subschema; type lists, which it asserts on, are rewritten as anyOf
        # first: `adapters.type_lists`): a 400, never a 500 that the circuit breaker would count against a
        # healthy upstream.
        raise InvalidRequest(
            f"response_format.json_schema.schema cannot be used with Anthropic structured outputs: {exc}",
            param="response_format.json_schema.schema",
        ) from exc


# --- sampling ---------------------------------------------------------------------------------------------


def _sampling(sampling: SamplingParams) -> Body:
    result: Body = {}
    if sampling.temperature is not None:
        result["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        result["top_p"] = sampling.top_p
    if sampling.top_k is not None:
        result["top_k"] = sampling.top_k
    if sampling.stop:
        result["stop_sequences"] = list(sampling.stop)
    return result


def _check_sampling(sampling: SamplingParams) -> None:
    unsupported: Iterable[tuple[str, bool]] = (
        ("presence_penalty", bool(sampling.presence_penalty)),
        ("frequency_penalty", bool(sampling.frequency_penalty)),
        ("logit_bias", bool(sampling.logit_bias)),
        ("min_p", sampling.min_p is not None),
    )
    for name, used in unsupported:
        if used:
            raise InvalidRequest(
                f"{name} is not supported by Anthropic models", param=name, code="unsupported_parameter"
            )


def _thinking(options: AnthropicOptions, max_tokens: int) -> Body | None:
    """The ``thinking`` parameter. The budget must stay below max_tokens: it is capped at max_tokens - 1, and
    a request too small for the minimum budget runs without thinking rather than failing."""
    if options.thinking is None:
        return None
    if options.thinking == "adaptive":
        return {"type": "adaptive"}
    budget = min(int(options.thinking), max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        return None
    return {"type": "enabled", "budget_tokens": budget}


def _requested_thinking(thinking: ThinkingConfig) -> Body:
    """A client's own ``thinking`` (its budget already checked against ``max_tokens`` by compat)."""
    if thinking.mode is ThinkingMode.ENABLED:
        return {"type": "enabled", "budget_tokens": thinking.budget_tokens}
    return {"type": thinking.mode.value}
