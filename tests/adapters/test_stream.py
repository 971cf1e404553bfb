"""Owned event streams (adapters/stream.py): order, failures at the point they happen, and cancellation.

The producers here are plain functions written against the producer contract, so each test controls exactly
when a producer sends, fails, blocks or ends. Time-dependent tests run on the autojump clock.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from adapters import Done, Event, Internal, InvalidRequest, StopReason, Token, Unavailable, Usage
from adapters.stream import open_event_stream, start_event_stream

DONE = Done(StopReason.END, Usage(1, 1))


async def consume(produce: Any, *, buffer: int = 8) -> list[Event]:
    """Every event of a stream, through `open_event_stream`."""
    with trio.fail_after(10):
        async with open_event_stream(produce, buffer=buffer) as events:
            return [event async for event in events]


async def test_events_arrive_in_order_and_the_stream_ends_at_done() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for i in range(50):
            await send.send(Token(str(i)))
        await send.send(DONE)

    received = await consume(produce, buffer=2)
    assert received == [*(Token(str(i)) for i in range(50)), DONE]


async def test_events_after_done_are_not_delivered_and_the_producer_is_stopped() -> None:
    producer_outcome: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(DONE)
        try:
            while True:  # a misbehaving producer that keeps going after Done
                await send.send(Token("extra"))
        except trio.Cancelled:
            producer_outcome.append("cancelled")
            raise

    with trio.fail_after(10):
        async with open_event_stream(produce, buffer=1) as events:
            assert [event async for event in events] == [DONE]
            assert [event async for event in events] == []  # finished streams stay finished
            assert events.events_received == 1
    assert producer_outcome == ["cancelled"]
    assert events.producer_done.is_set()


async def test_failure_before_the_first_event_is_raised_as_itself() -> None:
    cause = OSError("connection refused")

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        raise Unavailable("upstream down") from cause

    received: list[Event] = []
    with trio.fail_after(10), pytest.raises(Unavailable, match="upstream down") as caught:
        async with open_event_stream(produce) as events:
            async for event in events:
                received.append(event)
    assert type(caught.value) is Unavailable, "wrapped in an exception group"
    assert caught.value.__cause__ is cause
    assert received == []
    assert events.events_received == 0


async def test_failure_after_some_events_is_raised_where_it_happened() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("a"))
        await send.send(Token("b"))
        raise InvalidRequest("context too long", code="context_length_exceeded")

    received: list[Event] = []
    with trio.fail_after(10):
        async with open_event_stream(produce) as events:
            with pytest.raises(InvalidRequest) as caught:
                async for event in events:
                    received.append(event)
            # the consumer knows how far the stream got when it failed: two events were already sent
            assert received == [Token("a"), Token("b")]
            assert events.events_received == 2
            assert [event async for event in events] == []
    assert caught.value.code == "context_length_exceeded"


async def test_consumer_errors_leave_the_block_with_their_own_context() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(DONE)

    with trio.fail_after(10), pytest.raises(ValueError, match="consumer bug") as caught:
        async with open_event_stream(produce) as events:
            await events.__anext__()
            try:
                raise KeyError("first")
            except KeyError:
                raise ValueError("consumer bug") from None
    assert type(caught.value) is ValueError
    assert isinstance(caught.value.__context__, KeyError), "the context became the unwrapped group"


async def test_producer_that_ends_without_done_gives_internal() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("partial"))

    received: list[Event] = []
    with trio.fail_after(10), pytest.raises(Internal, match="without Done") as caught:
        async with open_event_stream(produce) as events:
            async for event in events:
                received.append(event)
    assert received == [Token("partial")]
    assert (caught.value.http_status, caught.value.code) == (500, "internal_error")


async def test_cancelling_the_consumer_cancels_the_producer_before_the_block_exits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        try:
            while True:
                await trio.sleep(1)
                await send.send(Token("tick"))
        finally:
            log.append(f"producer finally at {trio.current_time():g}")

    with trio.fail_after(100), trio.move_on_after(3.5) as scope:
        try:
            async with open_event_stream(produce) as events:
                async for _ in events:
                    log.append("token")
        finally:
            log.append("block exited")
    assert scope.cancelled_caught
    assert log == ["token", "token", "token", "producer finally at 3.5", "block exited"]
    assert events.producer_done.is_set()


async def test_consumer_that_breaks_early_stops_the_producer() -> None:
    log: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        try:
            for i in range(1000):
                await send.send(Token(str(i)))
        except trio.Cancelled:
            log.append("producer cancelled")
            raise

    with trio.fail_after(10):
        async with open_event_stream(produce, buffer=0) as events:
            async for event in events:
                if event == Token("2"):
                    break
        log.append("block exited")
    assert log == ["producer cancelled", "block exited"]
    assert events.events_received == 3


async def test_producer_blocked_on_a_full_channel_is_released_when_the_consumer_leaves() -> None:
    log: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for i in range(10):
            try:
                await send.send(Token(str(i)))
            except trio.Cancelled:
                log.append(f"cancelled while sending {i}")
                raise

    with trio.fail_after(10):
        async with open_event_stream(produce, buffer=2) as events:
            await trio.testing.wait_all_tasks_blocked()  # the producer filled the channel and waits
            assert log == []
        assert log == ["cancelled while sending 2"]
    assert events.producer_done.is_set()


async def test_producer_sending_after_the_consumer_left_ends_quietly() -> None:
    """A producer that shields its last send (e.g. while a worker thread finishes) finds the consumer gone:
    that is not an error anyone hears about, and the producer is still waited for."""
    log: list[str] = []

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        with trio.CancelScope(shield=True):
            await trio.testing.wait_all_tasks_blocked()
            log.append("sending after the consumer left")
            await send.send(Token("late"))
            log.append("unreachable")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            events = start_event_stream(nursery, produce)
            events.cancel()
            events.cancel()  # idempotent
        assert log == ["sending after the consumer left"]
        assert events.producer_done.is_set()


async def test_failure_that_cannot_be_delivered_ends_the_stream_without_done() -> None:
    """A producer that (against the contract) closes its channel and then fails cannot report the failure:
    the consumer sees a stream that ended without Done, and nothing escapes the producer task."""

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("a"))
        send.close()
        raise Unavailable("lost")

    received: list[Event] = []
    with trio.fail_after(10), pytest.raises(Internal, match="without Done"):
        async with open_event_stream(produce) as events:
            async for event in events:
                received.append(event)
    assert received == [Token("a")]


async def test_start_event_stream_lets_the_consumer_outlive_the_starting_function() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("first"))
        await send.send(DONE)

    def start(nursery: trio.Nursery) -> Any:
        return start_event_stream(nursery, produce)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            events = start(nursery)
            try:
                received = [event async for event in events]
            finally:
                events.cancel()
    assert received == [Token("first"), DONE]


class Fatal(BaseException):
    """A non-Exception failure, which the producer task does not carry through the channel."""


async def test_several_failures_leave_the_block_as_a_group() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await trio.testing.wait_all_tasks_blocked()
        raise Fatal

    with trio.fail_after(10), pytest.raises(BaseExceptionGroup) as caught:
        async with open_event_stream(produce):
            try:
                await trio.sleep_forever()
            finally:
                raise ValueError("consumer failed while being cancelled")
    assert {type(error) for error in caught.value.exceptions} == {Fatal, ValueError}


async def test_receive_nowait_takes_only_what_is_already_buffered() -> None:
    """What a fast producer has buffered can be taken without waiting; then None, never a block."""
    release = trio.Event()

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("a"))
        await send.send(Token("b"))
        await release.wait()
        await send.send(DONE)

    with trio.fail_after(10):
        async with open_event_stream(produce) as events:
            assert events.receive_nowait() is None  # the producer has not run yet
            await trio.testing.wait_all_tasks_blocked()
            assert [events.receive_nowait(), events.receive_nowait()] == [Token("a"), Token("b")]
            assert events.receive_nowait() is None  # the producer is waiting: nothing buffered
            assert events.events_received == 2
            release.set()
            await trio.testing.wait_all_tasks_blocked()
            assert events.receive_nowait() == DONE
            assert events.receive_nowait() is None  # finished, although the producer may still be running
            assert [event async for event in events] == []
            assert events.events_received == 3


async def test_receive_nowait_raises_a_buffered_failure_where_it_happened() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("a"))
        raise Unavailable("upstream went away")

    with trio.fail_after(10):
        async with open_event_stream(produce) as events:
            await trio.testing.wait_all_tasks_blocked()
            assert events.receive_nowait() == Token("a")
            with pytest.raises(Unavailable, match="upstream went away"):
                events.receive_nowait()
            assert events.receive_nowait() is None
            assert [event async for event in events] == []
            assert events.events_received == 1


async def test_receive_nowait_on_a_stream_ended_without_done_gives_internal() -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Token("partial"))

    with trio.fail_after(10):
        async with open_event_stream(produce) as events:
            await trio.testing.wait_all_tasks_blocked()
            assert events.receive_nowait() == Token("partial")
            with pytest.raises(Internal, match="without Done"):
                events.receive_nowait()
            assert events.receive_nowait() is None
