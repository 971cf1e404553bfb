"""Views for the OpenAI dialects that answer generations in their own shapes: ``POST /v1/responses`` and
``POST /v1/completions`` (the WebSocket form of Responses is `proxy.responses_ws`).

Each view is parse -> generation -> encode. The generation runs through the same functions as chat
(`proxy.chat.start_generation`: routing, the raw-prompt and v1/v2 dispatch, admission, the owned producer
that frees its slot after the backend returned, the breaker, the stop deadline). Failures before the first
event are statuses with OpenAI's error body; after it, the dialect's in-band error (`SSEEncoder.error`).

`generations_sse` is the streaming body both use: it drains one or more generations in order (a completions
request with several prompts runs them one after another, each choice after the previous one), joining
the events already buffered after each awaited one into one body piece, and waits for each producer to
return before moving on, so the slot is free before the client sees the end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

from quart import Response

from adapters.errors import TrinferError
from adapters.stream import EventStream
from adapters.types import Done, Event, ResolvedV2
from compat.errors import RouteNotFound
from compat.json_body import parse_json
from compat.openai.completions import CompletionEncoder, CompletionSSE, new_completion_id, parse_completion_request
from compat.openai.responses_request import parse_responses_request
from compat.openai.responses_stream import ResponseEncoder, ResponseSSE, new_response_id

from .chat import SSE_BATCH, SSE_BATCH_BYTES, SSE_HEADERS, current_request, read_body, start_generation
from .errors import encode_json
from .inflight import RequestInfo
from .logs import get_logger

if TYPE_CHECKING:
    from .routing import Router

log = get_logger("dialects")


class SSEEncoder(Protocol):
    """A dialect's SSE framing of engine events (it lives in ``compat/``)."""

    def encode(self, event: Event) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, exc: BaseException, request_id: str | None) -> bytes: ...


async def first_event(router: Router, req: ResolvedV2, info: RequestInfo) -> tuple[EventStream, Event]:
    """Start ``req``'s generation and wait for its first event (a failure up to here is raised: a status)."""
    events = await start_generation(router, req, info)
    try:
        return events, await events.__anext__()
    except BaseException:
        events.cancel()
        raise


async def collect(events: EventStream, first: Event) -> list[Event]:
    """Every event of a started generation, once its producer has returned (the slot is free)."""
    try:
        collected = [first]
        async for event in events:
            collected.append(event)
        await events.producer_done.wait()
    finally:
        events.cancel()
    return collected


def sse_response(body: AsyncIterator[bytes]) -> Response:
    response = Response(body, status=200, mimetype="text/event-stream")
    response.headers.update(SSE_HEADERS)
    response.timeout = None  # the stream lasts as long as the generation; writes are bounded instead
    return response


async def generations_sse(
    router: Router,
    started: tuple[EventStream, Event],
    more: Sequence[ResolvedV2],
    encoder: SSEEncoder,
    info: RequestInfo,
) -> AsyncIterator[bytes]:
    """The SSE body of a started generation and then of each request in ``more`` (see the module docstring).

    Opens no nursery or cancel scope (it is an async generator): cancelling it (client disconnect, write
    timeout) runs ``finally``, which stops the producer of the generation in progress.
    """
    events, event = started
    pending: list[bytes] = []
    try:
        for index in range(len(more) + 1):
            if index:
                events, event = await first_event(router, more[index - 1], info)
            while True:
                pending.append(encoder.encode(event))
                size = len(pending[-1])
                for _ in range(SSE_BATCH):
                    if isinstance(event, Done) or size >= SSE_BATCH_BYTES:
                        break
                    buffered = events.receive_nowait()
                    if buffered is None:
                        break
                    event = buffered
                    pending.append(encoder.encode(event))
                    size += len(pending[-1])
                if isinstance(event, Done):
                    await events.producer_done.wait()  # the slot is free before the client sees the end
                    events.cancel()
                    break
                yield b"".join(pending)
                pending.clear()
                event = await events.__anext__()
            if index < len(more):
                yield b"".join(pending)
                pending.clear()
        yield b"".join([*pending, encoder.end()])
    except Exception as exc:
        if not isinstance(exc, TrinferError):
            log.error("internal error mid-stream in request %s", info.request_id, exc_info=exc)
        info.ended_by = "error after streaming began: " + str(getattr(exc, "code", None) or "internal_error")
        yield b"".join([*pending, encoder.error(exc, info.request_id)])
    finally:
        events.cancel()


async def create_response(router: Router) -> Response:
    """``POST /v1/responses``: one ``response`` object, or its typed events as SSE."""
    info = current_request()
    parsed = parse_responses_request(parse_json(await read_body()))
    info.model = parsed.model
    started = await first_event(router, parsed.request, info)
    encoder = ResponseEncoder(new_response_id(), int(time.time()), parsed.model, parsed.settings)
    if parsed.stream:
        return sse_response(generations_sse(router, started, (), ResponseSSE(encoder), info))
    encoder.start()
    for event in await collect(*started):
        encoder.encode(event)
    return Response(encode_json(encoder.response()), status=200, mimetype="application/json")


def stored_response(response_id: str) -> RouteNotFound:
    """The 404 for every route that would read a stored response: this server stores none."""
    return RouteNotFound(
        f"Response with id '{response_id[:64]}' not found: this server is stateless and stores no responses.",
        param="response_id",
        code="response_not_found",
    )


async def create_completion(router: Router) -> Response:
    """``POST /v1/completions``: one ``text_completion`` with a choice per prompt, or its chunks as SSE."""
    info = current_request()
    completion = parse_completion_request(parse_json(await read_body()))
    info.model = completion.model
    first, *rest = completion.requests
    started = await first_event(router, first, info)
    encoder = CompletionEncoder(completion, new_completion_id(), int(time.time()))
    if completion.stream:
        return sse_response(generations_sse(router, started, rest, CompletionSSE(encoder), info))
    for event in await collect(*started):
        encoder.encode(event)
    for req in rest:
        for event in await collect(*await first_event(router, req, info)):
            encoder.encode(event)
    return Response(encode_json(encoder.result()), status=200, mimetype="application/json")
