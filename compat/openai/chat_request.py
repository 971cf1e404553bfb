"""``POST /v1/chat/completions`` bodies as a validated `ChatRequest` holding an engine `ResolvedV2`.

Theory of operation: every field OpenAI documents falls into one of three sets, and docs/api-compat.md lists
them field by field:

- `MAPPED_FIELDS` become part of the engine request (or of `ChatRequest` itself: ``stream``, ``user``);
  values trinfer cannot honour (audio output...) raise `UnsupportedParameter`. ``n > 1`` and ``logprobs`` are
  valid here; a backend without the capability refuses them when the request is routed (`proxy.chat`).
- `UNSUPPORTED_FIELDS` raise `UnsupportedParameter` whenever they are set (not ``null``): each would change
  what the client gets back, so ignoring it would be a silent lie.
- `IGNORED_FIELDS` are type-checked and then dropped: they are billing, storage, caching or style hints whose
  absence does not change the meaning of the answer.

Any other top-level key is ignored without a check, because the OpenAI SDKs pass ``extra_body`` through and
other servers' extensions should not break a client. Validation happens once, here; the proxy only dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.types import ResolvedV2

from .._fields import (
    as_list,
    as_str,
    invalid_value,
    item_path,
    opt_bool,
    opt_object,
    opt_str,
    required,
)
from ..errors import UnsupportedParameter
from ..fates import FieldFates
from .messages import parse_messages
from .sampling import parse_sampling
from .tools import parse_response_format, parse_tool_choice, parse_tools

MAPPED_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "modalities",
    }
)

#: Fields that change the answer in ways trinfer does not implement: any non-null value is refused.
UNSUPPORTED_FIELDS: dict[str, str] = {
    "functions": "The legacy 'functions' parameter is not supported; use 'tools'.",
    "function_call": "The legacy 'function_call' parameter is not supported; use 'tool_choice'.",
    "audio": "Audio output is not supported by this server.",
    "web_search_options": "Web search is not supported by this server.",
    "moderation": "Moderated completions are not supported by this server.",
}

#: Fields accepted and dropped, with the JSON kind each must have when given: "string", "boolean" or "object".
IGNORED_FIELDS: dict[str, str] = {
    "service_tier": "string",
    "store": "boolean",
    "metadata": "object",
    "reasoning_effort": "string",
    "verbosity": "string",
    "prediction": "object",
    "prompt_cache_key": "string",
    "prompt_cache_retention": "string",
    "prompt_cache_options": "object",
    "safety_identifier": "string",
}

FATES = FieldFates(MAPPED_FIELDS, UNSUPPORTED_FIELDS, IGNORED_FIELDS)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat request: the engine request plus what only the HTTP layer needs."""

    model: str
    stream: bool
    #: ``stream_options.include_usage``: send a final usage chunk (streaming only).
    include_usage: bool
    request: ResolvedV2
    #: OpenAI's end-user id; for logs only, never sent to a backend.
    user: str | None


def parse_chat_request(body: object) -> ChatRequest:
    """Validate a decoded chat body. Raises only `RequestValidationError` (including `UnsupportedParameter`)."""
    body = FATES.check(body)
    model = as_str(required(body, "model"), "model", non_empty=True)
    _check_modalities(body.get("modalities"))
    messages = parse_messages(required(body, "messages"))
    tools = () if body.get("tools") is None else parse_tools(body["tools"])
    stream = bool(opt_bool(body, "stream"))
    options = opt_object(body, "stream_options")
    include_usage = False
    if options is not None:
        include_usage = bool(opt_bool(options, "include_usage", "stream_options"))
        opt_bool(options, "include_obfuscation", "stream_options")  # trinfer never pads chunks
    parallel = opt_bool(body, "parallel_tool_calls")
    return ChatRequest(
        model=model,
        stream=stream,
        include_usage=stream and include_usage,
        request=ResolvedV2(
            model=model,
            messages=messages,
            sampling=parse_sampling(body),
            tools=tools,
            tool_choice=parse_tool_choice(body.get("tool_choice"), tools),
            response_format=parse_response_format(body.get("response_format")),
            parallel_tool_calls=True if parallel is None else parallel,
        ),
        user=opt_str(body, "user"),
    )


def _check_modalities(value: object) -> None:
    """Text is the only output modality; asking for audio is refused."""
    if value is None:
        return
    for i, item in enumerate(as_list(value, "modalities")):
        path = item_path("modalities", i)
        modality = as_str(item, path)
        if modality == "audio":
            raise UnsupportedParameter("Audio output is not supported by this server.", param=path)
        if modality != "text":
            raise invalid_value(path, f"expected 'text' or 'audio', but got {modality[:64]!r}.")
