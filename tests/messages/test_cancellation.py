"""An anthropic SDK client that goes away stops its generation and frees its slot, in every phase.

As in tests/proxy/test_cancellation.py: one slot and no queue (``active = 1, queue = 0``) unless the phase
needs a queue, so a slot that was not freed would make the follow-up request a 429; the mock's counters show it
saw the cancellation and runs nothing any more.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until

from .sdk import async_client

MESSAGES: list[Any] = [{"role": "user", "content": "one two three four five six"}]


async def follow_up_succeeds(d: RunningDaemon) -> None:
    async with async_client(d) as client:
        reply = await client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES)
    assert reply.content[0].text == "one two three four five six"  # type: ignore[union-attr]


async def test_closing_the_stream_mid_way_cancels_the_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with (
                async_client(d) as client,
                client.messages.stream(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES) as stream,
            ):
                async for text in stream.text_stream:
                    assert text == "one "
                    break
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["active"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)
            assert d.backend_status()["completed"] == 1


async def test_leaving_before_the_first_event_cancels_the_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=5000)) as d:
            async with trio.open_nursery() as nursery, async_client(d) as client:

                async def waiting_for_headers() -> None:
                    await client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES, stream=True)

                nursery.start_soon(waiting_for_headers)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)


async def test_leaving_a_non_streaming_request_cancels_the_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with trio.open_nursery() as nursery, async_client(d) as client:

                async def whole_answer() -> None:
                    await client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES)

                nursery.start_soon(whole_answer)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                await trio.sleep(2.5)  # a few tokens in
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["completed"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)


async def test_leaving_while_queued_leaves_the_queue(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with (
            running_daemon(mock_config(active=1, queue=1, token_delay_ms=1000)) as d,
            async_client(d) as client,
        ):
            async with trio.open_nursery() as holder:
                holder.start_soon(
                    lambda: client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES)
                )
                await wait_until(lambda: d.admission().active == 1)
                async with trio.open_nursery() as queued:
                    queued.start_soon(
                        lambda: client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=MESSAGES)
                    )
                    await wait_until(lambda: d.admission().queued == 1)
                    queued.cancel_scope.cancel()
                await wait_until(lambda: d.admission().queued == 0)
                assert d.admission().active == 1
                assert d.backend_status()["started"] == 1
            stats = d.admission()
            assert (stats.admitted_total, stats.rejected_total) == (1, 0)
            assert d.backend_status()["cancelled"] == 0
            assert d.backend_status()["completed"] == 1
