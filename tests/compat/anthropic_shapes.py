"""The anthropic SDK's own type definitions, used as an independent judge of the Messages dialect's shapes.

Request bodies in the test tables are checked against the SDK's ``MessageCreateParams`` TypedDicts, so they are
bodies a real anthropic client may send; answers, stream events and error bodies are checked with the SDK's
response models, and a stream is replayed through the SDK's own accumulator (what ``messages.stream()`` uses
for ``get_final_message()``), so they are what a real client can parse.
"""

from __future__ import annotations

from typing import Any

from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent, message_count_tokens_params, message_create_params
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from .sdk_shapes import force_lazy

_STREAMING = TypeAdapter(message_create_params.MessageCreateParamsStreaming)
_NON_STREAMING = TypeAdapter(message_create_params.MessageCreateParamsNonStreaming)
_COUNT = TypeAdapter(message_count_tokens_params.MessageCountTokensParams)
_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def assert_sdk_accepts_messages_body(body: dict[str, Any]) -> None:
    """Raise pydantic's ValidationError unless the SDK's request types accept ``body``."""
    adapter = _STREAMING if body.get("stream") is True else _NON_STREAMING
    force_lazy(adapter.validate_python(body))


def assert_sdk_accepts_count_tokens_body(body: dict[str, Any]) -> None:
    force_lazy(_COUNT.validate_python(body))


def sdk_message(answer: dict[str, Any]) -> Message:
    """The SDK's strict parse of a message object."""
    return Message.model_validate(answer, strict=False)


def sdk_final_message(events: list[tuple[str, dict[str, Any]]]) -> Message:
    """Validate every stream event with the SDK's event union and fold them with the SDK's accumulator."""
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for name, data in events:
        assert data["type"] == name  # the ``event:`` line and the data's type always agree
        if name == "ping":
            continue
        event = _EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    return Message.model_validate(snapshot.model_dump())


def sdk_error(body: dict[str, Any]) -> ErrorResponse:
    return ErrorResponse.model_validate(body)
