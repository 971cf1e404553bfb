"""The v1/v2 choice (adapters/dispatch.py): a v2 backend gets the request as it is, a v1-only backend its
plain-text form, and a request a v1 backend cannot express is refused before it runs.

The v1-only backend is the mock with its capabilities narrowed to v1: its ``generate`` sends `Token` events
and its ``generate_v2`` sends `Text`, so the events show which entry point ran.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio

from adapters import (
    BackendCapabilities,
    Done,
    Event,
    InvalidRequest,
    MessageV2,
    RedactedThinkingBlock,
    ResolvedV2,
    Role,
    Text,
    TextBlock,
    ThinkingBlock,
    Token,
    ToolSpec,
)
from adapters.dispatch import producer_for
from adapters.mock import MockBackend
from adapters.stream import open_event_stream
from compat.openai.errors import render_error


class V1Mock(MockBackend):
    def capabilities(self) -> BackendCapabilities:
        return replace(super().capabilities(), v2=False)


async def booted(cls: type[MockBackend]) -> MockBackend:
    backend = cls.from_options({"reply": ["a ", "b"]})
    await backend.boot()
    return backend


PLAIN = ResolvedV2(model="mock-echo", messages=(MessageV2(Role.USER, (TextBlock("hi"),)),))
WITH_TOOLS = replace(PLAIN, tools=(ToolSpec("lookup", "find a thing", {"type": "object"}),))


async def events_of(backend: MockBackend, req: ResolvedV2) -> list[Event]:
    with trio.fail_after(10):
        async with open_event_stream(producer_for(backend, req)) as events:
            return [event async for event in events]


async def test_a_v2_backend_runs_generate_v2() -> None:
    received = await events_of(await booted(MockBackend), WITH_TOOLS)
    assert isinstance(received[-1], Done)
    assert not any(isinstance(event, Token) for event in received)


async def test_a_v1_backend_runs_generate_with_the_plain_text_form() -> None:
    received = await events_of(await booted(V1Mock), PLAIN)
    assert [type(event) for event in received] == [Token, Token, Done]
    assert "".join(event.text for event in received if isinstance(event, Token)) == "a b"
    assert not any(isinstance(event, Text) for event in received)


async def test_a_request_a_v1_backend_cannot_express_is_refused_before_anything_runs() -> None:
    backend = await booted(V1Mock)
    with pytest.raises(InvalidRequest) as caught:
        producer_for(backend, WITH_TOOLS)
    assert backend.status()["started"] == 0
    status, _, body = render_error(caught.value)
    assert status == 400
    assert body["error"]["code"] == "unsupported_parameter"
    assert body["error"]["param"] == "model"
    assert "does not support tools" in body["error"]["message"]


class ChatOnlyMock(MockBackend):
    """A v2 backend that takes conversations only (as Claude models do)."""

    def capabilities(self) -> BackendCapabilities:
        return replace(super().capabilities(), raw_prompt=False)


RAW = ResolvedV2(model="mock-echo", messages=(), prompt="Once upon a time")


async def test_a_raw_prompt_runs_on_a_backend_that_takes_raw_text() -> None:
    received = await events_of(await booted(MockBackend), RAW)
    assert [type(event) for event in received] == [Text, Text, Done]


@pytest.mark.parametrize("cls", [ChatOnlyMock, V1Mock])
async def test_a_raw_prompt_is_refused_by_a_backend_without_raw_prompt(cls: type[MockBackend]) -> None:
    backend = await booted(cls)
    with pytest.raises(InvalidRequest) as caught:
        producer_for(backend, RAW)
    assert backend.status()["started"] == 0
    status, _, body = render_error(caught.value)
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "unsupported_parameter", "model")
    assert "raw text" in body["error"]["message"]


class RecordingMock(MockBackend):
    """The mock, keeping every v2 request it ran, so a test sees exactly what the backend received."""

    takes_thinking = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[ResolvedV2] = []

    def capabilities(self) -> BackendCapabilities:
        return replace(super().capabilities(), thinking_blocks=self.takes_thinking)

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        self.received.append(req)
        await super().generate_v2(req, send)


class ThinkingMock(RecordingMock):
    takes_thinking = True


SIGNED = ThinkingBlock("I should greet.", "c2ln")
WITH_REASONING = replace(
    PLAIN,
    messages=(
        *PLAIN.messages,
        MessageV2(Role.ASSISTANT, (SIGNED, TextBlock("hello"))),
        MessageV2(Role.ASSISTANT, (RedactedThinkingBlock("b3BhcXVl"),)),
        MessageV2(Role.USER, (TextBlock("again"),)),
    ),
)


async def test_reasoning_blocks_reach_only_a_backend_that_takes_them() -> None:
    plain, thinking = await booted(RecordingMock), await booted(ThinkingMock)
    assert isinstance(plain, RecordingMock) and isinstance(thinking, RecordingMock)
    await events_of(plain, WITH_REASONING)
    await events_of(thinking, WITH_REASONING)
    assert thinking.received == [WITH_REASONING]
    (stripped,) = plain.received
    assert stripped.messages == (
        *PLAIN.messages,
        MessageV2(Role.ASSISTANT, (TextBlock("hello"),)),
        MessageV2(Role.USER, (TextBlock("again"),)),
    )


async def test_a_v1_backend_answers_a_conversation_with_reasoning_blocks() -> None:
    """Reasoning blocks alone do not need v2: removed first, the rest is plain text."""
    received = await events_of(await booted(V1Mock), WITH_REASONING)
    assert [type(event) for event in received] == [Token, Token, Done]
