"""The pipeline's event stream (proxy/pipeline.py `Generation`): batches of what is buffered, the end seen only
once the producer has returned, failures where they happened.

Each test drives a real `EventStream` whose producer is a plain function written against the producer
contract, so it controls exactly when the producer sends, fails, lingers or misbehaves. The daemon-level
behaviour (slots free before ``[DONE]``, the stop deadline, the breaker) is pinned by the HTTP, WebSocket and
reliability suites, which all run through this pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from adapters import Done, Event, StopReason, Token, Unavailable, Usage
from adapters.stream import start_event_stream
from proxy.pipeline import BATCH, Generation

DONE = Done(StopReason.END, Usage(1, 1))
Produce = Callable[[trio.MemorySendChannel[Event]], Awaitable[None]]


def tokens(n: int) -> list[Event]:
    return [Token(f"t{i}") for i in range(n)]


async def test_buffered_events_come_as_one_batch_of_at_most_batch_plus_one() -> None:
    events = [*tokens(2 * BATCH + 5), DONE]

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for event in events:
            await send.send(event)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce, buffer=len(events)))
            await trio.testing.wait_all_tasks_blocked()
            batches = [batch async for batch in generation]
            assert await generation.next_batch() == []  # an ended generation stays ended
    assert [len(batch) for batch in batches] == [BATCH + 1, BATCH + 1, 4]
    assert [event for batch in batches for event in batch] == events


async def test_the_batch_with_done_comes_only_once_the_producer_has_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A backend may still clean up after sending Done (the pipeline frees the slot after that): the consumer
    sees Done only once it has."""
    cleaned_up = trio.Event()

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("a"))
        await send.send(DONE)
        await trio.sleep(5)  # e.g. closing an upstream connection
        cleaned_up.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce))
            received = await generation.collect()
            assert cleaned_up.is_set()
    assert received == [Token("a"), DONE]


async def test_a_failure_after_events_of_one_batch_comes_after_those_events() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for event in tokens(3):
            await send.send(event)
        raise Unavailable("upstream went away")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce))
            await trio.testing.wait_all_tasks_blocked()
            await generation.wait_first_event()  # events came first: no failure yet
            assert await generation.next_batch() == tokens(3)
            with pytest.raises(Unavailable, match="upstream went away"):
                await generation.next_batch()
            assert await generation.next_batch() == []


async def test_a_failure_before_any_event_is_raised_by_wait_first_event() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        raise Unavailable("connection refused")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            stream = start_event_stream(nursery, produce)
            generation = Generation(stream)
            with pytest.raises(Unavailable, match="connection refused"):
                await generation.wait_first_event()
            assert stream.producer_done.is_set()


async def test_a_producer_that_keeps_sending_after_done_cannot_hold_the_end_back() -> None:
    sends_after_done: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(DONE)
        try:
            for _ in range(100):  # a misbehaving producer; the channel holds only one event
                await send.send(Token("extra"))
        except trio.BrokenResourceError:
            sends_after_done.append("refused")
            raise

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce, buffer=1))
            assert await generation.collect() == [DONE]
    assert sends_after_done == ["refused"]


async def test_cancel_stops_a_running_producer(autojump_clock: trio.testing.MockClock) -> None:
    outcome: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        try:
            while True:
                await send.send(Token("x"))
                await trio.sleep(1)
        except trio.Cancelled:
            outcome.append("cancelled")
            raise

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            stream = start_event_stream(nursery, produce)
            generation = Generation(stream)
            await generation.wait_first_event()
            assert await generation.next_batch() == [Token("x")]
            generation.cancel()
            await stream.producer_done.wait()
    assert outcome == ["cancelled"]
