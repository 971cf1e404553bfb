"""The v1/v2 choice (adapters/dispatch.py): a v2 backend gets the request as it is, a v1-only backend its
plain-text form, and a request a v1 backend cannot express is refused before it runs.

The v1-only backend is the mock with its capabilities narrowed to v1: its ``generate`` sends `Token` events
and its ``generate_v2`` sends `Text`, so the events show which entry point ran.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio

from adapters import (
    BackendCapabilities,
    Done,
    Event,
    InvalidRequest,
    MessageV2,
    ResolvedV2,
    Role,
    Text,
    TextBlock,
    Token,
    ToolSpec,
)
from adapters.dispatch import producer_for
from adapters.mock import MockBackend
from adapters.stream import open_event_stream
from compat.errors import render_error


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
