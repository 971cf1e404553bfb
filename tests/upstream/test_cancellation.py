"""A client that goes away stops the upstream's generation at once, in every phase, over HTTP and WebSocket.

Proved on the upstream's own books: the upstream is a real trinfer process whose mock waits 500 ms before each
of its ten tokens, and its ``/admin/status`` counts the generations it is running (``active``) and those that
ended by cancellation (``cancelled``). A generation that the gateway let run to its end would be counted
``completed``, five seconds later, instead. Real clock: the upstream is another process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tests.daemon_harness import RunningDaemon, running_daemon, wait_until
from tests.ws.wsclient import cancel, connect, create, next_frame

from .processes import GATEWAY_MODEL, UpstreamServer, gateway_config

PROMPT = "one two three four five six seven eight nine ten"
MESSAGES = [{"role": "user", "content": PROMPT}]


async def until_upstream(upstream: UpstreamServer, *, active: int) -> None:
    """Wait until the upstream runs exactly ``active`` generations (the caller's ``fail_after`` bounds it)."""

    async def reached() -> bool:
        return await upstream.active() == active

    await wait_until(reached, poll_s=0.02)


@asynccontextmanager
async def gateway(upstream: UpstreamServer, active: int = 16) -> AsyncIterator[RunningDaemon]:
    with trio.fail_after(60):
        async with running_daemon(gateway_config([upstream.base_url], active=active)) as d:
            yield d


async def assert_stopped_upstream(upstream: UpstreamServer, d: RunningDaemon, cancelled_before: int) -> None:
    """The upstream stopped generating because of a cancellation, and the gateway holds nothing."""
    await until_upstream(upstream, active=0)
    counters = await upstream.counters()
    assert counters["cancelled"] == cancelled_before + 1, counters
    await wait_until(lambda: d.backend_status("fleet")["active"] == 0)
    assert d.backend_status("fleet")["base_urls"][0]["outstanding"] == 0
    assert d.admission("fleet").active == 0


async def test_leaving_before_the_first_token_stops_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream) as d, d.client() as client:
        before = (await slow_upstream.counters())["cancelled"]
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, stream=True)

            nursery.start_soon(ask)
            await until_upstream(slow_upstream, active=1)
            nursery.cancel_scope.cancel()
        await assert_stopped_upstream(slow_upstream, d, before)


async def test_leaving_mid_stream_stops_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream) as d, d.client() as client:
        before = (await slow_upstream.counters())["cancelled"]
        stream = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
        await assert_stopped_upstream(slow_upstream, d, before)


async def test_leaving_a_non_streaming_request_stops_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream) as d, d.client() as client:
        before = (await slow_upstream.counters())["cancelled"]
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)

            nursery.start_soon(ask)
            await until_upstream(slow_upstream, active=1)
            await trio.sleep(0.7)  # a token or so into the answer, which nobody will see
            nursery.cancel_scope.cancel()
        await assert_stopped_upstream(slow_upstream, d, before)


async def test_leaving_the_queue_never_reaches_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream, active=1) as d, d.client() as client:
        counters = await slow_upstream.counters()
        async with trio.open_nursery() as nursery:

            async def ask() -> None:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)

            nursery.start_soon(ask)  # takes the only slot
            await until_upstream(slow_upstream, active=1)
            async with trio.open_nursery() as queued:
                queued.start_soon(ask)
                await wait_until(lambda: d.admission("fleet").queued == 1)
                queued.cancel_scope.cancel()
            await wait_until(lambda: d.admission("fleet").queued == 0)
            assert (await slow_upstream.counters())["started"] == counters["started"] + 1
            nursery.cancel_scope.cancel()
        await assert_stopped_upstream(slow_upstream, d, counters["cancelled"])


async def test_a_websocket_cancel_frame_stops_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream) as d, connect(d) as ws:
        before = (await slow_upstream.counters())["cancelled"]
        await ws.send_message(create("r1", PROMPT, model=GATEWAY_MODEL))
        first = await next_frame(ws)
        assert first["type"] == "chat.completion.chunk"
        await ws.send_message(cancel("r1"))
        await assert_stopped_upstream(slow_upstream, d, before)


async def test_closing_the_websocket_stops_the_upstream(slow_upstream: UpstreamServer) -> None:
    async with gateway(slow_upstream) as d:
        before = (await slow_upstream.counters())["cancelled"]
        async with connect(d) as ws:
            await ws.send_message(create("r1", PROMPT, model=GATEWAY_MODEL))
            await until_upstream(slow_upstream, active=1)
        await assert_stopped_upstream(slow_upstream, d, before)
