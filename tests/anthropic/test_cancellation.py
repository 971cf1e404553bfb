"""A consumer that goes away (client disconnect, stop deadline) closes the upstream connection at once.

Each test proves it from the upstream side: the fake Messages API, blocked writing or waiting, sees its
connection closed by the SDK client.
"""

from __future__ import annotations

import trio

from adapters.anthropic_backend import AnthropicBackend
from adapters.stream import open_event_stream
from adapters.types import MessageV2, ResolvedV2, Role, Text, TextBlock

from .fake_upstream import FakeMessagesAPI, Hang, Reply, message_start, stream_reply, text_block

REQ = ResolvedV2(model="claude", messages=(MessageV2(Role.USER, (TextBlock("tell me a long story"),)),))


async def test_consumer_leaving_mid_stream_closes_the_upstream_stream(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["Once", " upon"])[:4], Hang()))
    with trio.fail_after(10):
        async with open_event_stream(lambda send: backend.generate_v2(REQ, send)) as stream:
            first = await stream.__anext__()
            assert first == Text("Once")
            # leaving the block is what a client disconnect does to the request handler
        assert stream.producer_done.is_set()
        await fake.wait_disconnected()
    assert fake.disconnects == 1


async def test_cancelling_while_waiting_for_upstream_headers_closes_the_connection(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(Reply(hang_before_headers=True))
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with open_event_stream(lambda send: backend.generate_v2(REQ, send)) as stream:
                await fake.wait_request()
                scope.cancel()
                await stream.__anext__()
        assert scope.cancelled_caught
        await fake.wait_disconnected()
    assert fake.disconnects == 1


async def test_consumer_that_stops_reading_then_leaves_closes_the_upstream_stream(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    pieces = [f"w{i} " for i in range(64)]  # more than the event channel buffers: the producer blocks on send
    fake.reply(stream_reply(message_start(), text_block(0, pieces)[:-1], Hang()))
    with trio.fail_after(10):
        async with open_event_stream(lambda send: backend.generate_v2(REQ, send), buffer=1) as stream:
            assert await stream.__anext__() == Text("w0 ")
            await trio.testing.wait_all_tasks_blocked()
        await fake.wait_disconnected()
    assert fake.disconnects == 1
