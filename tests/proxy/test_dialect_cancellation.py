"""A client that goes away stops its Responses or legacy completions generation and frees its slot, in every
phase: queued, before the first token, mid-stream, and during a non-streaming request.

As in test_cancellation.py (chat), the daemon has one slot and no queue where it matters, so a slot that was not
freed would make the follow-up a 429; the mock's counters show the backend saw the cancellation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until

TEXT = "one two three four five six"

Call = Callable[[openai.AsyncOpenAI, bool], Awaitable[Any]]


async def responses_call(client: openai.AsyncOpenAI, stream: bool) -> Any:
    return await client.responses.create(model=MOCK_MODEL, input=TEXT, stream=stream)


async def completions_call(client: openai.AsyncOpenAI, stream: bool) -> Any:
    return await client.completions.create(model=MOCK_MODEL, prompt=TEXT, stream=stream, max_tokens=50)


async def first_text(stream: Any) -> str:
    async for event in stream:
        if getattr(event, "type", None) == "response.output_text.delta":
            return str(event.delta)
        if getattr(event, "object", None) == "text_completion":
            return str(event.choices[0].text)
    raise AssertionError("no text")


DIALECTS = pytest.mark.parametrize("call", [responses_call, completions_call], ids=["responses", "completions"])


async def follow_up_succeeds(d: RunningDaemon, call: Call) -> None:
    async with d.client() as client:
        await call(client, False)


@DIALECTS
async def test_disconnect_mid_stream(autojump_clock: trio.abc.Clock, call: Call) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with d.client() as client:
                stream = await call(client, True)
                assert await first_text(stream) == "one "
                await stream.close()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["active"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d, call)
            assert d.backend_status()["completed"] == 1


@DIALECTS
async def test_disconnect_before_the_first_token(autojump_clock: trio.abc.Clock, call: Call) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=5000)) as d:
            async with trio.open_nursery() as nursery, d.client() as client:
                nursery.start_soon(call, client, True)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d, call)


@DIALECTS
async def test_disconnect_during_a_non_streaming_request(autojump_clock: trio.abc.Clock, call: Call) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with trio.open_nursery() as nursery, d.client() as client:
                nursery.start_soon(call, client, False)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                await trio.sleep(2.5)  # a few tokens in
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["completed"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d, call)


@DIALECTS
async def test_disconnect_while_queued_leaves_the_queue(autojump_clock: trio.abc.Clock, call: Call) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=1, token_delay_ms=1000)) as d, d.client() as client:
            async with trio.open_nursery() as holder:
                holder.start_soon(call, client, False)
                await wait_until(lambda: d.admission().active == 1)
                async with trio.open_nursery() as queued:
                    queued.start_soon(call, client, True)
                    await wait_until(lambda: d.admission().queued == 1)
                    queued.cancel_scope.cancel()
                await wait_until(lambda: d.admission().queued == 0)
                assert d.admission().active == 1 and d.backend_status()["started"] == 1
            stats = d.admission()
            assert (stats.admitted_total, stats.rejected_total) == (1, 0)
            assert d.backend_status()["cancelled"] == 0 and d.backend_status()["completed"] == 1
