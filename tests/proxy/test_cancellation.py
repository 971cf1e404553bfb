"""A client that goes away stops its generation and frees its slot, in every phase of a request.

Each test runs the daemon with one slot and no queue (``active = 1, queue = 0``), so a slot that was not freed
would turn the follow-up request into a 429: the follow-up succeeding proves the slot came back. The backend's
own counters show it saw the cancellation (``cancelled``) and is no longer running anything (``active``).
"""

from __future__ import annotations

from typing import Any

import trio

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until

MESSAGES: list[Any] = [{"role": "user", "content": "one two three four five six"}]


async def follow_up_succeeds(d: RunningDaemon) -> None:
    """A fresh request is admitted at once (no queue) and completes."""
    async with d.client() as client:
        reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "one two three four five six"


async def test_disconnect_mid_stream_cancels_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with d.client() as client:
                stream = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)
                role = await stream.__anext__()
                assert role.choices[0].delta.content == ""  # OpenAI's role chunk, sent with the first token
                first = await stream.__anext__()
                assert first.choices[0].delta.content == "one "
                await stream.close()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["active"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)
            assert d.backend_status()["completed"] == 1


async def test_disconnect_before_first_token_cancels_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=5000)) as d:
            async with trio.open_nursery() as nursery, d.client() as client:

                async def waiting_for_headers() -> None:
                    await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)

                nursery.start_soon(waiting_for_headers)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)


async def test_disconnect_during_non_streaming_request_cancels_generation(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(120):
        async with running_daemon(mock_config(active=1, queue=0, token_delay_ms=1000)) as d:
            async with trio.open_nursery() as nursery, d.client() as client:

                async def whole_answer() -> None:
                    await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)

                nursery.start_soon(whole_answer)
                await wait_until(lambda: d.backend_status()["active"] == 1)
                await trio.sleep(2.5)  # a few tokens in: the generation is well under way
                nursery.cancel_scope.cancel()
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            assert d.backend_status()["completed"] == 0
            await wait_until(lambda: d.admission().active == 0)
            await follow_up_succeeds(d)


async def test_disconnect_while_queued_leaves_the_queue(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=1, token_delay_ms=1000)
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client:
            async with trio.open_nursery() as holder:
                holder.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
                await wait_until(lambda: d.admission().active == 1)
                async with trio.open_nursery() as queued:
                    queued.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
                    await wait_until(lambda: d.admission().queued == 1)
                    queued.cancel_scope.cancel()
                # The queue emptied at once, while the first request is still generating.
                await wait_until(lambda: d.admission().queued == 0)
                assert d.admission().active == 1
                assert d.backend_status()["started"] == 1
                # Its place is free: another request can queue behind the running one and is served next.
                second = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
                assert second.choices[0].message.content == "one two three four five six"
            stats = d.admission()
            assert (stats.admitted_total, stats.rejected_total, stats.timed_out_total) == (2, 0, 0)
            assert d.backend_status()["cancelled"] == 0
            assert d.backend_status()["completed"] == 2
