"""``POST /v1/chat/completions``: parse, route, admit, generate in an owned task, answer as JSON or SSE.

Theory of operation:
1. The view parses and validates the body (400 on any problem), picks a backend (404 unknown model, 503 when
   none is available) and the v1/v2 entry point (400 ``unsupported_parameter`` when the request needs v2
   features the backend lacks), then waits for an admission slot (429 queue full, 503 queue timeout).
2. The generation runs as a producer task in the *request's* nursery (``RequestInfo.nursery``). The producer
   owns the slot and releases it in ``finally``, i.e. only after the backend's ``generate`` has returned,
   whatever ended it. It records the outcome on the backend's circuit breaker.
3. The view awaits the first event. A failure up to here is a proper HTTP status with an OpenAI error body.
4. Non-streaming: the view consumes the rest too and answers one ``chat.completion``. Streaming: the view
   returns a response whose body is an async generator that only drains the `EventStream` and encodes
   chunks (it opens no nursery or cancel scope); a failure after the first chunk becomes one SSE error event,
   with no finish chunk and no ``[DONE]``.
Client disconnects, the write timeout and the stop deadline all arrive as cancellation of the request, which
cancels the producer: the backend sees ``trio.Cancelled`` and the slot is freed once it has returned.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import trio
from quart import Response, request

from adapters.backend import Backend
from adapters.errors import TrinferError
from adapters.stream import EventStream, Producer, start_event_stream
from adapters.types import Done, Event
from compat.errors import ShuttingDown, UnsupportedParameter
from compat.json_body import parse_json
from compat.openai.chat_request import ChatRequest, parse_chat_request
from compat.openai.chat_response import ChunkEncoder, CompletionAccumulator, new_completion_id
from compat.openai.sse import SSE_DONE, sse_error, sse_event

from .admission import Admission, Slot
from .breaker import Outcome
from .errors import encode_json
from .inflight import SCOPE_KEY, RequestInfo
from .logs import get_logger
from .routing import Route, recording

if TYPE_CHECKING:
    from .routing import Router

log = get_logger("chat")

Generate = Callable[[trio.MemorySendChannel[Event]], Awaitable[None]]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

#: At most this many already-buffered events are joined into one SSE body piece after an awaited one...
SSE_BATCH = 64
#: ...and no more once the piece has this many bytes: ``write_timeout_s`` bounds each write, so a piece must
#: stay small enough for a client that reads slowly but steadily to take it within that time.
SSE_BATCH_BYTES = 16 * 1024


def current_request() -> RequestInfo:
    """The `RequestInfo` the middleware put in this request's ASGI scope."""
    info: RequestInfo = cast(Mapping[str, Any], request.scope)[SCOPE_KEY]
    return info


async def read_body() -> bytes:
    """The request body (413 past ``max_body_bytes``, 408 when it stops arriving: see `proxy.apps`)."""
    body = await request.get_data()
    return body if isinstance(body, bytes) else body.encode()


def shutting_down() -> ShuttingDown:
    return ShuttingDown("The server is shutting down and stopped this request; retry against another instance")


def generation_for(backend: Backend, chat: ChatRequest) -> Generate:
    """The backend entry point for ``chat``: v2 when the backend has it, else v1 if the request allows.

    ``n > 1`` and ``logprobs`` are refused (400) for a backend whose capabilities lack them."""
    capabilities = backend.capabilities()
    sampling = chat.request.sampling
    if sampling.n > 1 and not capabilities.choices:
        raise UnsupportedParameter(
            f"The model '{chat.model}' generates one choice per request ('n' must be 1).", param="n"
        )
    if sampling.top_logprobs is not None and not capabilities.logprobs:
        raise UnsupportedParameter(
            f"The model '{chat.model}' does not report log probabilities ('logprobs' must be false).",
            param="logprobs",
        )
    if capabilities.v2:
        return lambda send: backend.generate_v2(chat.request, send)
    if not chat.request.needs_v2():
        v1 = chat.request.to_v1()
        return lambda send: backend.generate(v1, send)
    raise UnsupportedParameter(
        f"The model '{chat.model}' does not support tools, images, tool results or response_format",
        param="model",
    )


async def acquire_slot(admission: Admission, info: RequestInfo) -> Slot:
    """An admission slot; the stop deadline turns a wait in the queue into `ShuttingDown`."""
    with info.abortable() as scope:
        slot = await admission.acquire()
    if scope.cancelled_caught:
        raise shutting_down()
    return slot


def producer(slot: Slot, route: Route, generate: Generate, info: RequestInfo) -> Producer:
    """The task body of one generation: holds ``slot`` until ``generate`` has returned."""

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        try:
            with recording(route):
                with info.abortable() as scope:
                    await generate(send)
                if scope.cancelled_caught:
                    raise shutting_down()
        finally:
            slot.release()

    return produce


async def start_generation(router: Router, chat: ChatRequest, info: RequestInfo) -> EventStream:
    """Route, admit and start the producer; returns its event stream (the caller must ``cancel()`` it)."""
    route = router.route(chat.model)
    try:
        generate = generation_for(route.handle.backend, chat)
        slot = await acquire_slot(route.handle.admission, info)
    except BaseException:
        route.record(Outcome.NEUTRAL)
        raise
    return start_event_stream(info.owned_nursery(), producer(slot, route, generate, info))


async def chat_completions(router: Router) -> Response:
    info = current_request()
    chat = parse_chat_request(parse_json(await read_body()))
    info.model = chat.model
    events = await start_generation(router, chat, info)
    try:
        first = await events.__anext__()
    except BaseException:
        events.cancel()
        raise
    completion_id, created = new_completion_id(), int(time.time())
    if chat.stream:
        encoder = ChunkEncoder(chat.model, completion_id, created, chat.include_usage)
        response = Response(sse_body(events, first, encoder, info), status=200, mimetype="text/event-stream")
        response.headers.update(SSE_HEADERS)
        response.timeout = None  # the stream lasts as long as the generation; writes are bounded instead
        return response
    accumulator = CompletionAccumulator(chat.model, completion_id, created)
    try:
        accumulator.add(first)
        async for event in events:
            accumulator.add(event)
        await events.producer_done.wait()  # the slot is free before the client sees the answer
    finally:
        events.cancel()
    return Response(encode_json(accumulator.result()), status=200, mimetype="application/json")


async def sse_body(
    events: EventStream, first: Event, encoder: ChunkEncoder, info: RequestInfo
) -> AsyncIterator[bytes]:
    """The SSE body: drains ``events`` (already started, first event in hand) and encodes each chunk.

    After each awaited event it also takes the events already buffered in the channel (up to `SSE_BATCH`
    events or `SSE_BATCH_BYTES`) and yields all their chunks as one body piece: one socket write instead of
    one per event, which is where a fast producer's time went (issue 7, P2). It never waits to fill a batch,
    so a slow producer's tokens still go out one by one, as soon as they arrive. A failure inside a batch
    yields the chunks encoded before it, then the error event.

    Opens no nursery or cancel scope (it is an async generator). Cancelling it (client disconnect, write
    timeout) runs ``finally``, which stops the producer.
    """
    pending: list[bytes] = []
    try:
        event = first
        while True:
            pending.extend(sse_event(chunk) for chunk in encoder.encode(event))
            size = sum(map(len, pending))
            for _ in range(SSE_BATCH):
                if isinstance(event, Done) or size >= SSE_BATCH_BYTES:
                    break
                buffered = events.receive_nowait()
                if buffered is None:
                    break
                event = buffered
                encoded = [sse_event(chunk) for chunk in encoder.encode(event)]
                pending.extend(encoded)
                size += sum(map(len, encoded))
            piece = b"".join(pending)
            pending.clear()
            yield piece
            if isinstance(event, Done):
                break
            event = await events.__anext__()
        await events.producer_done.wait()  # the slot is free before the client sees [DONE]
        yield SSE_DONE
    except Exception as exc:
        if not isinstance(exc, TrinferError):
            log.error("internal error mid-stream in request %s", info.request_id, exc_info=exc)
        info.ended_by = "error after streaming began: " + str(getattr(exc, "code", None) or "internal_error")
        yield b"".join([*pending, sse_error(exc, info.request_id)])
    finally:
        events.cancel()
