"""Owned event streams: a backend producer task feeding a bounded channel, inside the consumer's nursery.

Two shapes, both owned:

    async with open_event_stream(lambda send: backend.generate(req, send)) as events:
        async for event in events:
            ...

or, where the consumer must outlive the function that starts the generation (an HTTP view that waits for the
first event, then returns a response whose body drains the rest), the caller passes a nursery it owns and
closes the stream when done::

    events = start_event_stream(request_nursery, produce)
    try:
        ...
    finally:
        events.cancel()

Leaving the ``async with`` block - normally, by an exception, or by cancellation (client disconnect, stop
deadline) - cancels the producer and waits for it to finish, so a generation never outlives its request.
A failure raised by the producer is carried through the channel and re-raised *in the consumer*, at the point
in the stream where it happened: the consumer knows whether anything was sent yet and picks a status or an
in-band error event accordingly. No exception groups leak out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NoReturn

import trio

from .errors import Internal
from .types import Done, Event

Producer = Callable[[trio.MemorySendChannel[Event]], Awaitable[None]]

DEFAULT_BUFFER = 8


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class EventStream:
    """The consumer side of a generation. Iterate it; it stops after `Done` and raises producer failures."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Event | _Failure], scope: trio.CancelScope) -> None:
        self._receive = receive
        self._scope = scope
        self._finished = False
        self.events_received = 0
        #: Set when the producer task has returned (for callers that must wait for it, e.g. slot release).
        self.producer_done = trio.Event()

    def cancel(self) -> None:
        """Stop the producer (if still running) and close the receiving end. Idempotent, never blocks."""
        if not self.producer_done.is_set():  # (a cancel costs: trio records the cancelling task's repr)
            self._scope.cancel()
        self._receive.close()

    def close_receiving(self) -> None:
        """Close only the receiving end: the producer is not cancelled (its own cleanup runs to the end), but
        any further send fails, so a producer that keeps sending after `Done` returns instead of blocking."""
        self._receive.close()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            self._end_of_channel()
        return self._accept(item)

    def receive_nowait(self) -> Event | None:
        """The next event if one is already waiting in the channel, else None; never blocks or checkpoints.

        Lets a consumer batch what a fast producer has already buffered (one socket write for many SSE
        events) without waiting for more. Otherwise exactly like ``__anext__``: a buffered failure is raised
        here, `Done` is returned and finishes the stream, a channel closed without `Done` raises `Internal`.
        Once the stream has finished nothing more will come, so it returns None.
        """
        if self._finished:
            return None
        try:
            item = self._receive.receive_nowait()
        except trio.WouldBlock:
            return None
        except trio.EndOfChannel:
            self._end_of_channel()
        return self._accept(item)

    def _end_of_channel(self) -> NoReturn:
        self._finished = True
        raise Internal("backend ended the stream without Done") from None

    def _accept(self, item: Event | _Failure) -> Event:
        """Count and return an event, or raise a carried failure; either way mark the end of the stream."""
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        self.events_received += 1
        if isinstance(item, Done):
            self._finished = True
        return item


async def _run_producer(
    produce: Producer, send: trio.MemorySendChannel[Event | _Failure], stream: EventStream
) -> None:
    try:
        with stream._scope, send:
            try:
                await produce(send)  # a send channel of Event | _Failure accepts Events
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the consumer went away; nothing left to tell it
            except Exception as exc:  # carried to the consumer, re-raised there
                try:
                    await send.send(_Failure(exc))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
    finally:
        stream.producer_done.set()


def start_event_stream(nursery: trio.Nursery, produce: Producer, *, buffer: int = DEFAULT_BUFFER) -> EventStream:
    """Start ``produce`` as a task in the caller's ``nursery``; return the consuming end.

    The caller must call `EventStream.cancel()` when it stops consuming (or cancel the nursery).
    """
    send, receive = trio.open_memory_channel[Event | _Failure](buffer)
    stream = EventStream(receive, trio.CancelScope())
    nursery.start_soon(_run_producer, produce, send, stream)
    return stream


@asynccontextmanager
async def open_event_stream(produce: Producer, *, buffer: int = DEFAULT_BUFFER) -> AsyncIterator[EventStream]:
    """Run ``produce`` as a task owned by this context and yield the consuming end of its channel.

    An exception leaving the block (a producer failure re-raised by the consumer, or the consumer's own) comes
    out as itself, not wrapped in the nursery's exception group: the producer task never raises (its failures
    travel through the channel), so a group of one holds the block's exception, and callers can ``except
    Unavailable`` around the block. A group of several is re-raised whole: the producer's and the block's
    ``trio.Cancelled`` when an enclosing scope was cancelled (that scope catches them as usual), or a producer
    dying of a `BaseException` that is not an `Exception`.
    """
    try:
        async with trio.open_nursery() as nursery:
            stream = start_event_stream(nursery, produce, buffer=buffer)
            try:
                yield stream
            finally:
                stream.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
        context = error.__context__
        try:
            raise error
        finally:
            error.__context__ = context  # keep its own context, not the group it was unwrapped from
