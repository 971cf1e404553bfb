"""``POST /v1/messages`` and ``/v1/messages/count_tokens`` bodies as validated engine requests.

Theory of operation: every top-level field Anthropic documents falls into one of three sets (docs/api-compat.md
lists them field by field):

- `MAPPED_FIELDS`: ``model``, ``max_tokens`` (required for messages), ``system``, ``messages``, ``tools``,
  ``tool_choice``, ``stop_sequences``, ``temperature``, ``top_p``, ``top_k``, ``stream``, ``metadata``
  (``user_id`` is kept for logs, never sent to a backend), ``output_format`` / ``output_config.format``
  (structured outputs: the engine's ``json_schema`` response format, its schema checked for shape by
  `compat.schema`) and ``thinking`` (the engine's `ThinkingConfig`: backends that think honour it, the others
  ignore it);
- `UNSUPPORTED_FIELDS`: refused whenever set, because each asks for work done on Anthropic's platform;
- `IGNORED_FIELDS`: type-checked and dropped: billing, routing and caching hints (service tier, speed, region,
  workspace, automatic ``cache_control``), context-management hints and prompt-cache diagnostics, none of which
  changes what the answer means.

Any other top-level key is ignored without a check, as the OpenAI dialect does: SDKs pass ``extra_body``
through and a newer client's hints should not break a request. Validation happens once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.types import (
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    SamplingParams,
    ThinkingConfig,
    ThinkingMode,
)

from .._fields import (
    JSONDict,
    as_int,
    as_list,
    as_object,
    as_str,
    field_path,
    invalid_value,
    item_path,
    opt_bool,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    required,
)
from ..fates import FieldFates
from ..schema import check_schema
from .content import parse_messages, parse_system
from .tools import parse_tool_choice, parse_tools

#: Fields that become part of the engine request (or of `MessagesRequest`: ``stream``, ``metadata``).
MAPPED_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "metadata",
        "thinking",
        "output_config",
        "output_format",
    }
)

#: Fields asking for work on Anthropic's platform: any non-null value is refused.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "mcp_servers": "The MCP connector ('mcp_servers') is not supported by this server.",
    "container": "Code execution containers ('container') are not supported by this server.",
}

#: Fields accepted and dropped, with the JSON kind each must have when given.
IGNORED_FIELDS: dict[str, str] = {
    "service_tier": "string",
    "speed": "string",
    "inference_geo": "string",
    "user_profile_id": "string",
    "workspace_id": "string",
    "cache_control": "object",
    "context_management": "object",
    "diagnostics": "object",
}

FATES = FieldFates(MAPPED_FIELDS, UNSUPPORTED_FIELDS, IGNORED_FIELDS)

#: Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A validated Messages request: the engine request plus what only the HTTP layer needs."""

    model: str
    stream: bool
    request: ResolvedV2
    #: ``metadata.user_id``: for logs only, never sent to a backend.
    user_id: str | None


def parse_messages_request(body: object) -> MessagesRequest:
    """Validate a decoded ``/v1/messages`` body. Raises only `RequestValidationError` (and subclasses)."""
    obj = FATES.check(body)
    max_tokens = as_int(required(obj, "max_tokens"), "max_tokens", low=1)
    request = _resolve(obj, max_tokens)
    metadata = opt_object(obj, "metadata")
    return MessagesRequest(
        model=request.model,
        stream=bool(opt_bool(obj, "stream")),
        request=request,
        user_id=None if metadata is None else opt_str(metadata, "user_id", "metadata"),
    )


def parse_count_tokens_request(body: object) -> ResolvedV2:
    """Validate a decoded ``/v1/messages/count_tokens`` body: the prompt fields of a Messages request."""
    return _resolve(FATES.check(body), None)


def _resolve(body: JSONDict, max_tokens: int | None) -> ResolvedV2:
    model = as_str(required(body, "model"), "model", non_empty=True)
    messages = parse_system(body.get("system")) + parse_messages(required(body, "messages"))
    tools = () if body.get("tools") is None else parse_tools(body["tools"])
    choice = parse_tool_choice(body.get("tool_choice"), tools)
    return ResolvedV2(
        model=model,
        messages=messages,
        sampling=SamplingParams(
            temperature=opt_number(body, "temperature", low=0, high=1),
            top_p=opt_number(body, "top_p", low=0, high=1),
            top_k=opt_int(body, "top_k", low=0),
            max_tokens=max_tokens,
            stop=_stop_sequences(body.get("stop_sequences")),
        ),
        tools=tools,
        tool_choice=choice.choice,
        parallel_tool_calls=choice.parallel,
        response_format=_response_format(body),
        thinking=_thinking(body, max_tokens),
    )


def _stop_sequences(value: object, path: str = "stop_sequences") -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(as_str(item, item_path(path, i), non_empty=True) for i, item in enumerate(as_list(value, path)))


def _thinking(body: JSONDict, max_tokens: int | None) -> ThinkingConfig | None:
    """``thinking``: ``{"type": "enabled", "budget_tokens": N}`` (N >= 1024, below ``max_tokens``),
    ``{"type": "disabled"}`` or ``{"type": "adaptive"}``."""
    thinking = opt_object(body, "thinking")
    if thinking is None:
        return None
    kind = as_str(required(thinking, "type", "thinking"), "thinking.type")
    if kind not in ("enabled", "disabled", "adaptive"):
        raise invalid_value(
            "thinking.type", f"expected 'enabled', 'disabled' or 'adaptive', but got {kind[:64]!r}."
        )
    if kind != "enabled":
        return ThinkingConfig(ThinkingMode(kind))
    budget = as_int(
        required(thinking, "budget_tokens", "thinking"), "thinking.budget_tokens", low=MIN_THINKING_BUDGET
    )
    if max_tokens is not None and budget >= max_tokens:
        raise invalid_value("thinking.budget_tokens", "expected a budget smaller than 'max_tokens'.")
    return ThinkingConfig(ThinkingMode.ENABLED, budget)


def _response_format(body: JSONDict) -> ResponseFormat:
    """Structured outputs: ``output_config.format`` or its older name, top-level ``output_format``."""
    config = opt_object(body, "output_config")
    if config is not None:
        opt_str(config, "effort", "output_config")  # a cost/quality hint: accepted and ignored
        found = opt_object(config, "format", "output_config")
        if found is not None:
            return _json_schema(found, "output_config.format")
    legacy = opt_object(body, "output_format")
    return ResponseFormat() if legacy is None else _json_schema(legacy, "output_format")


def _json_schema(value: JSONDict, path: str) -> ResponseFormat:
    kind_path = field_path(path, "type")
    kind = as_str(required(value, "type", path), kind_path)
    if kind != "json_schema":
        raise invalid_value(kind_path, f"expected 'json_schema', but got {kind[:64]!r}.")
    schema_path = field_path(path, "schema")
    schema = check_schema(as_object(required(value, "schema", path), schema_path), schema_path)
    return ResponseFormat(ResponseFormatKind.JSON_SCHEMA, name="output", schema=schema)
