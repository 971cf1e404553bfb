"""The openai SDK's own type definitions, used as an independent judge of wire shapes.

Request dicts are checked against the SDK's ``CompletionCreateParams`` TypedDicts (via pydantic, which the SDK
already depends on), so the test tables are bodies a real SDK client may send. Response dicts are checked with
the SDK's response models, so they are what a real SDK client can parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from openai.types.chat import completion_create_params
from pydantic import TypeAdapter

_STREAMING = TypeAdapter(completion_create_params.CompletionCreateParamsStreaming)
_NON_STREAMING = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)


def force_lazy(value: Any) -> Any:
    """Exhaust pydantic's lazy validators for ``Iterable`` fields so every nested item is really checked."""
    if isinstance(value, Mapping):
        return {k: force_lazy(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Iterable):
        return [force_lazy(v) for v in value]
    return value


def assert_sdk_accepts_chat_body(body: dict[str, Any]) -> None:
    """Raise pydantic's ValidationError unless the SDK's request types accept ``body``."""
    adapter = _STREAMING if body.get("stream") is True else _NON_STREAMING
    force_lazy(adapter.validate_python(body))
