"""``POST /v1/responses`` bodies (and WebSocket ``response.create`` events) as a validated `ResponsesRequest`.

Theory of operation: the same three sets as chat (`compat.openai.chat_request`), field by field in
docs/api-compat.md:

- `MAPPED_FIELDS` become part of the engine request, of the echoed settings (`ResponsesRequest.settings`, which
  the answer's ``response`` object repeats as OpenAI does) or of `ResponsesRequest` itself; values trinfer
  cannot honour (``background: true``, ``truncation: "auto"``, hosted tools, logprobs) raise
  `UnsupportedParameter` naming the field.
- `UNSUPPORTED_FIELDS` raise `UnsupportedParameter` whenever they are set: they need stored state
  (``previous_response_id``, ``conversation``, ``prompt``) or change the answer in ways trinfer does not
  implement. trinfer is stateless: ``store`` is accepted and nothing is stored.
- `IGNORED_FIELDS` are type-checked and dropped (caching, billing, reasoning-effort and policy hints).

Unknown top-level keys are ignored without a check (the SDKs send ``extra_body`` as top-level keys), except the
common extensions ``top_k`` and ``min_p``, which are mapped as in chat, and the chat fields ``n`` and
``logprobs``, which a client moving from chat may still send: a response has one output and reports log
probabilities only through ``top_logprobs`` and ``include``, so ``n > 1`` and ``logprobs: true`` are refused
rather than silently answered with one output and none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.types import (
    ResolvedV2,
    ResponseFormat,
    ResponseFormatKind,
    SamplingParams,
    ToolChoice,
    ToolSpec,
)

from .._fields import (
    JSONDict,
    as_list,
    as_object,
    as_str,
    field_path,
    item_path,
    opt_bool,
    opt_choice,
    opt_int,
    opt_number,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..fates import FieldFates
from .responses_input import parse_input
from .tools import format_kind, json_schema_format, parse_tool_choice, parse_tools

MAPPED_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "n",
        "logprobs",
        "max_output_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "top_logprobs",
        "include",
        "truncation",
        "background",
        "user",
        "metadata",
    }
)

#: Fields whose every non-null value is refused, with the reason the client is told.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "previous_response_id": "This server is stateless and stores no responses: send the whole conversation in "
    "'input' instead of 'previous_response_id'.",
    "conversation": "This server is stateless and stores no conversations: send the whole conversation in "
    "'input'.",
    "prompt": "Stored prompt templates are not supported by this server; send 'instructions' and 'input'.",
    "max_tool_calls": "'max_tool_calls' is not supported by this server.",
    "moderation": "Moderated responses are not supported by this server.",
}

#: Fields accepted and dropped, with the JSON kind each must have when given.
IGNORED_FIELDS: dict[str, str] = {
    "store": "boolean",
    "service_tier": "string",
    "reasoning": "object",
    "prompt_cache_key": "string",
    "prompt_cache_retention": "string",
    "prompt_cache_options": "object",
    "safety_identifier": "string",
    "context_management": "array",
    "background_options": "object",
    "access_programs": "object",
    "image": "object",
}

FATES = FieldFates(MAPPED_FIELDS, UNSUPPORTED_FIELDS, IGNORED_FIELDS)

#: ``include`` values that ask for output trinfer does not produce and that a client would miss.
UNSUPPORTED_INCLUDES = frozenset({"message.output_text.logprobs"})


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """A validated Responses request: the engine request, the settings the answer echoes, the HTTP bits."""

    model: str
    stream: bool
    request: ResolvedV2
    #: The request's settings as the ``response`` object repeats them (``instructions``, ``tools``...).
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: OpenAI's end-user id; for logs only, never sent to a backend.
    user: str | None = None


def parse_responses_request(body: object) -> ResponsesRequest:
    """Validate a decoded Responses body; raises only `RequestValidationError` (and `UnsupportedParameter`)."""
    body = FATES.check(body)
    model = as_str(required(body, "model"), "model", non_empty=True)
    _check_unsupported_values(body)
    instructions = opt_str(body, "instructions")
    messages = parse_input(required(body, "input"), instructions)
    tools = () if body.get("tools") is None else parse_tools(body["tools"], flat=True)
    tool_choice = parse_tool_choice(body.get("tool_choice"), tools, flat=True)
    text_format = _text_format(body.get("text"))
    parallel = opt_bool(body, "parallel_tool_calls")
    sampling = SamplingParams(
        temperature=opt_number(body, "temperature", low=0, high=2),
        top_p=opt_number(body, "top_p", low=0, high=1),
        top_k=opt_int(body, "top_k", low=0),
        min_p=opt_number(body, "min_p", low=0, high=1),
        max_tokens=opt_int(body, "max_output_tokens", low=1),
    )
    options = opt_object(body, "stream_options")
    if options is not None:
        opt_bool(options, "include_obfuscation", "stream_options")  # trinfer never pads events
    metadata = opt_object(body, "metadata")
    user = opt_str(body, "user")
    request = ResolvedV2(
        model=model,
        messages=messages,
        sampling=sampling,
        tools=tools,
        tool_choice=tool_choice,
        response_format=text_format,
        parallel_tool_calls=True if parallel is None else parallel,
    )
    settings: dict[str, Any] = {
        "instructions": instructions,
        "max_output_tokens": sampling.max_tokens,
        "metadata": {} if metadata is None else metadata,
        "parallel_tool_calls": request.parallel_tool_calls,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "tool_choice": _choice_setting(tool_choice),
        "tools": [_tool_setting(tool) for tool in tools],
        "text": {"format": _format_setting(text_format)},
        "truncation": "disabled",
        "store": False,
        "background": False,
        "user": user,
    }
    return ResponsesRequest(
        model=model, stream=bool(opt_bool(body, "stream")), request=request, settings=settings, user=user
    )


def _check_unsupported_values(body: JSONDict) -> None:
    """Fields that are mapped, but only some of whose values trinfer can honour."""
    if opt_bool(body, "background"):
        raise UnsupportedParameter(
            "Background responses are not supported by this server (it stores nothing to poll).",
            param="background",
        )
    if opt_choice(body, "truncation", ("auto", "disabled")) == "auto":
        raise UnsupportedParameter(
            "truncation 'auto' is not supported: this server never drops input; over-long input is refused.",
            param="truncation",
        )
    if (opt_int(body, "n", low=1) or 1) > 1:
        raise UnsupportedParameter(
            "A response has one output: 'n' (a chat completions parameter) must be 1.", param="n"
        )
    if opt_bool(body, "logprobs"):
        raise UnsupportedParameter(
            "'logprobs' is a chat completions parameter; the Responses API asks with 'top_logprobs' and "
            "'include', which this server does not support.",
            param="logprobs",
        )
    if opt_int(body, "top_logprobs", low=0, high=20):
        raise UnsupportedParameter(
            "Log probabilities are not supported ('top_logprobs' must be 0).", param="top_logprobs"
        )
    includes = body.get("include")
    if includes is not None:
        for i, value in enumerate(as_list(includes, "include")):
            path = item_path("include", i)
            if as_str(value, path) in UNSUPPORTED_INCLUDES:
                raise UnsupportedParameter(f"include {value!r} is not supported by this server.", param=path)


def _text_format(value: object, path: str = "text") -> ResponseFormat:
    """``text.format``: ``text`` (default), ``json_object`` or ``json_schema`` (flat: name, schema, strict);
    ``text.verbosity`` is checked and has no effect."""
    if value is None:
        return ResponseFormat()
    text = as_object(value, path)
    opt_str(text, "verbosity", path)
    fmt = opt_object(text, "format", path)
    if fmt is None:
        return ResponseFormat()
    format_path = field_path(path, "format")
    kind = format_kind(fmt, format_path)
    if kind is not ResponseFormatKind.JSON_SCHEMA:
        return ResponseFormat(kind)
    return json_schema_format(fmt, format_path)


def _choice_setting(choice: ToolChoice) -> str | dict[str, str]:
    if choice.name is not None:
        return {"type": "function", "name": choice.name}
    return choice.mode.value


def _tool_setting(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters),
        "strict": tool.strict,
    }


def _format_setting(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.kind is not ResponseFormatKind.JSON_SCHEMA:
        return {"type": fmt.kind.value}
    return {
        "type": "json_schema",
        "name": fmt.name,
        "schema": dict(fmt.schema or {}),
        "strict": fmt.strict,
        "description": None,
    }
