"""The one generation pipeline every view uses: route -> admit -> owned producer -> event stream.

Every inbound dialect (OpenAI chat, embeddings, the WebSocket, and the Responses, completions and Anthropic
Messages views) is written the same way: parse the body into the engine's request (`ResolvedV2` or
`EmbedResolved`), hand it to this module, encode what comes back in the dialect's own shape::

    generation = await generate(services.router, req, info)   # a status error if it fails before any event
    async for batch in generation:                            # lists of engine events; the last ends in Done
        ...encode and write...
    events = await generation.collect()                       # or: every event at once (non-streaming)

    result = await embed(services.router, req, info)          # EmbedResolved -> EmbedResult
    tokens = await count_tokens(services.router, req, info)   # ResolvedV2 -> its prompt's token count

(``info`` is the request's `RequestInfo`; for SSE, `proxy.sse.sse_response` does the loop above given the
dialect's encoder.) What this module guarantees, so that no view repeats it:

1. Routing: `Router.route` picks one backend (404 unknown model, 400 no embedding backend, 503 none ready).
2. Dispatch: `adapters.dispatch.producer_for` picks ``generate_v2`` or ``generate`` (400 when the request
   needs v2 and the backend has only v1), before the request waits for a slot.
3. One owned task does the backend work: it waits for an admission slot (429 queue full, 503 queue timeout),
   runs the backend and releases the slot in ``finally``, i.e. only after the backend has returned, whatever
   ended it. A generation's task runs in the request's nursery (`RequestInfo.owned_nursery`), so the end of
   the request (client disconnect, write timeout) cancels it; `Generation.cancel` stops it sooner.
4. The stop deadline: when the graceful stop aborts the request (`Inflight.abort_all`) while it waits for a
   slot or runs, the work ends with `ShuttingDown` (503 before the first event, ``server_shutting_down``
   in-band after). Written once, in `_until_stop_deadline`.
5. The circuit breaker records the outcome of that whole unit of work once (`_backend_work`): success,
   a backend fault, or neutral (client errors, cancellation, queue refusals, the stop deadline).
6. The end of a stream is seen only after the producer task has returned, so with the slot free: the batch
   that holds `Done`, and any failure, is handed over only then.
7. Batching: a batch is the event waited for plus at most `BATCH` more that were already buffered; it never
   waits to fill up, so a slow backend's tokens still go out one by one, as soon as they arrive.
8. Failures keep their place in the stream: one before the first event is raised by `generate` (the view
   answers with a status through its route's error renderer, `proxy.errors.ErrorRenderers`); a later one is
   raised by the next batch, after the events that preceded it were handed over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

import trio

from adapters.dispatch import embedder_for, producer_for, request_for
from adapters.stream import EventStream, Producer, start_event_stream
from adapters.types import Done, EmbedResolved, EmbedResult, Event, ResolvedV2
from compat.errors import QueueFull, QueueTimeout, ShuttingDown

from .inflight import RequestInfo
from .metrics import Phase, Rejection, TokenClock
from .routing import Route, Router, recording

#: At most this many already-buffered events join a batch after the event it waited for.
BATCH = 64

T = TypeVar("T")


async def generate(router: Router, req: ResolvedV2, info: RequestInfo, *, stream: bool) -> Generation:
    """Route ``req``, start its producer in the request's nursery and wait for its first event.

    ``stream`` says whether the client reads the answer as it comes (SSE, WebSocket) or waits for all of it;
    the backend gets it as ``req.stream``, and the metrics name the phase a cancellation came in by it. Raises
    whatever ended the generation before its first event (routing, dispatch, admission, the backend), so the
    view can answer with a status. Otherwise the returned `Generation` holds the first batch.
    """
    if req.stream != stream:
        req = replace(req, stream=stream)
    route = router.route(req.model)
    progress = _Progress(stream)
    producer = _producer(route, req, info, progress)
    clock = info.metrics.token_clock(req.model, info.started, trio.current_time) if info.metrics else None
    generation = Generation(start_event_stream(info.owned_nursery(), producer), progress, clock, info, req.model)
    try:
        await generation.wait_first_event()
    except BaseException:
        generation.cancel()
        raise
    return generation


async def embed(router: Router, req: EmbedResolved, info: RequestInfo) -> EmbedResult:
    """Route ``req`` to a backend that embeds and run it under admission; the vectors, or the error."""
    route = router.route(req.model, embed=True)
    async with _backend_work(
        route, info, _Progress(stream=False), lambda: embedder_for(route.handle.backend, req)
    ) as run:
        return await run(req)


async def count_tokens(router: Router, req: ResolvedV2, info: RequestInfo) -> int:
    """Route ``req`` and count its prompt tokens with the backend's own tokenizer (``Backend.count_tokens``).

    No admission slot: counting is short and holds no generation's resources; the breaker still records how
    it ended, and the stop deadline still ends it.
    """
    route = router.route(req.model)
    with recording(route), _until_stop_deadline(info):
        return await route.handle.backend.count_tokens(request_for(route.handle.backend, req))


class Generation:
    """The consuming end of one generation: batches of engine events (see the module docstring, 6-8).

    Iterate it for batches; `collect` takes them all. Call `cancel` when no longer consuming (the end of the
    request does it too).
    """

    def __init__(
        self,
        events: EventStream,
        progress: _Progress | None = None,
        clock: TokenClock | None = None,
        info: RequestInfo | None = None,
        model: str = "",
    ) -> None:
        self._events = events
        self._progress = progress if progress is not None else _Progress(stream=True)
        self._clock = clock
        self._info = info
        self._model = model
        #: A batch taken ahead (the first one, by `wait_first_event`), handed out next.
        self._ahead: list[Event] | None = None
        #: A failure that ended a batch early, raised by the next call.
        self._failure: Exception | None = None
        self._finished = False

    async def wait_first_event(self) -> None:
        """Take the first batch ahead: raises a failure that came before any event, else returns at once."""
        if self._ahead is None:
            self._ahead = await self.next_batch()

    async def next_batch(self) -> list[Event]:
        """The next events: waits for one, adds what is already buffered; ``[]`` once the stream has ended."""
        if self._ahead is not None:
            batch, self._ahead = self._ahead, None
            return batch
        if self._failure is not None:
            failure, self._failure = self._failure, None
            await self._end()
            raise failure
        if self._finished:
            return []
        try:
            batch = [await self._events.__anext__()]
        except Exception:
            await self._end()
            raise
        try:
            while len(batch) <= BATCH and not isinstance(batch[-1], Done):
                event = self._events.receive_nowait()
                if event is None:
                    break
                batch.append(event)
        except Exception as exc:
            self._failure = exc  # after the events before it
            self._observe(batch)
            return batch
        self._observe(batch)
        if isinstance(batch[-1], Done):
            await self._end()
        return batch

    def _observe(self, batch: list[Event]) -> None:
        """The first event reached the consumer (the cancellation phase); the request's TTFT and usage (its
        log line) and the metrics."""
        self._progress.first_event = True
        last = batch[-1]
        done = last if isinstance(last, Done) else None
        content = len(batch) - (done is not None)
        if self._clock is not None:
            self._clock.content(content)
        info = self._info
        if info is None:
            return
        if content and info.ttft_s is None:
            info.ttft_s = trio.current_time() - info.started
        if done is not None:
            info.usage = done.usage
            if info.metrics is not None:
                info.metrics.observe_usage(self._model, done.usage)

    async def _end(self) -> None:
        """The stream has ended: wait for the producer task to return (the slot is free after that)."""
        self._finished = True
        self._events.close_receiving()  # a producer sending past Done gets an error instead of blocking
        await self._events.producer_done.wait()

    def __aiter__(self) -> Generation:
        return self

    async def __anext__(self) -> list[Event]:
        batch = await self.next_batch()
        if not batch:
            raise StopAsyncIteration
        return batch

    async def collect(self) -> list[Event]:
        """Every event, through `Done` (the producer has returned by then); cancels the stream on failure."""
        events: list[Event] = []
        try:
            async for batch in self:
                events.extend(batch)
        finally:
            self.cancel()
        return events

    def cancel(self) -> None:
        """Stop the producer if it still runs. Idempotent, never blocks; the request's nursery awaits it."""
        self._events.cancel()


def shutting_down() -> ShuttingDown:
    return ShuttingDown("The server is shutting down and stopped this request; retry against another instance")


@contextmanager
def _until_stop_deadline(info: RequestInfo) -> Iterator[None]:
    """Run the block until the stop deadline aborts the request; then raise `ShuttingDown` instead."""
    with info.abortable() as scope:
        yield
    if scope.cancelled_caught:
        raise shutting_down()


@dataclass(slots=True)
class _Progress:
    """How far one request's backend work got, for the phase of a cancellation."""

    stream: bool
    admitted: bool = False
    first_event: bool = False

    @property
    def phase(self) -> Phase:
        if not self.admitted:
            return Phase.QUEUED
        if not self.stream:
            return Phase.NON_STREAMING
        return Phase.STREAMING if self.first_event else Phase.BEFORE_FIRST_TOKEN


_REJECTIONS: tuple[tuple[type[Exception], Rejection], ...] = (
    (QueueFull, Rejection.QUEUE_FULL),
    (QueueTimeout, Rejection.QUEUE_TIMEOUT),
    (ShuttingDown, Rejection.SHUTTING_DOWN),
)


@contextmanager
def _observed(route: Route, info: RequestInfo, progress: _Progress) -> Iterator[None]:
    """Count how the block ended when it is a client leaving (by phase) or a refusal before the slot."""
    try:
        yield
    except trio.Cancelled:
        if info.metrics is not None and not info.aborted:  # the stop deadline is not the client leaving
            info.metrics.observe_cancellation(route.handle.name, progress.phase)
        raise
    except Exception as exc:
        if info.metrics is not None and not progress.admitted:
            for cls, reason in _REJECTIONS:
                if isinstance(exc, cls):
                    info.metrics.observe_rejection(route.handle.name, reason)
        raise


@asynccontextmanager
async def _backend_work(
    route: Route, info: RequestInfo, progress: _Progress, prepare: Callable[[], T]
) -> AsyncIterator[T]:
    """One unit of backend work on ``route``: ``prepare()`` (checks that need no slot; it returns what the block
    runs), an admission slot, then the block. The slot is released once the block has ended; the breaker
    records how it all ended, once; the metrics count a client leaving or a refusal.
    """
    with _observed(route, info, progress), recording(route), _until_stop_deadline(info):
        prepared = prepare()
        slot = await route.handle.admission.acquire()
        progress.admitted = True
        try:
            yield prepared
        finally:
            slot.release()


def _producer(route: Route, req: ResolvedV2, info: RequestInfo, progress: _Progress) -> Producer:
    """The task body of one generation: dispatch, admission, the backend's producer, the slot released."""

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        async with _backend_work(route, info, progress, lambda: producer_for(route.handle.backend, req)) as run:
            await run(send)

    return produce
