"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic Messages dialect's thin views.

Each is parse (`compat.anthropic`) -> generate (route, admit, owned producer: `proxy.chat.start_generation`)
-> encode (`compat.anthropic`). Errors on these paths render in Anthropic's shape wherever they are raised
(`proxy.errors.render` picks the renderer by path), and the key may come as ``x-api-key`` (`proxy.asgi`).
A failure before the first event is a status; after it, one ``event: error`` ends the stream.

``count_tokens`` routes like a generation (404 unknown model, 503 -> 529 when nothing is ready) but takes no
admission slot: counting is cheap and never holds a model context for long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Response

from adapters.errors import TrinferError
from adapters.stream import EventStream
from adapters.types import Done, Event
from compat.anthropic.request import parse_count_tokens_request, parse_messages_request
from compat.anthropic.response import MessageAccumulator, count_tokens_answer, new_message_id
from compat.anthropic.stream import EventEncoder, MessagesSSEEncoder
from compat.json_body import parse_json
from compat.openai.chat_request import ChatRequest

from .chat import SSE_HEADERS, current_request, read_body, start_generation
from .errors import encode_json
from .inflight import RequestInfo
from .logs import get_logger
from .routing import Router, recording

log = get_logger("messages")

async def messages(router: Router) -> Response:
    info = current_request()
    parsed = parse_messages_request(parse_json(await read_body()))
    info.model = parsed.model
    chat = ChatRequest(parsed.model, parsed.stream, include_usage=False, request=parsed.request, user=None)
    events = await start_generation(router, chat, info)
    try:
        first = await events.__anext__()
    except BaseException:
        events.cancel()
        raise
    message_id, stops = new_message_id(), parsed.request.sampling.stop
    if parsed.stream:
        encoder = MessagesSSEEncoder(EventEncoder(parsed.model, message_id, stops))
        response = Response(sse_body(events, first, encoder, info), status=200, mimetype="text/event-stream")
        response.headers.update(SSE_HEADERS)
        response.timeout = None  # the stream lasts as long as the generation; writes are bounded instead
        return response
    accumulator = MessageAccumulator(parsed.model, message_id, stops)
    try:
        accumulator.add(first)
        async for event in events:
            accumulator.add(event)
        await events.producer_done.wait()  # the slot is free before the client sees the answer
    finally:
        events.cancel()
    return Response(encode_json(accumulator.result()), status=200, mimetype="application/json")


async def sse_body(
    events: EventStream, first: Event, encoder: MessagesSSEEncoder, info: RequestInfo
) -> AsyncIterator[bytes]:
    """The event stream's SSE body; a failure after the first event is one ``event: error``."""
    try:
        event = first
        while True:
            piece = encoder.encode(event)
            if isinstance(event, Done):
                await events.producer_done.wait()  # the slot is free before the client sees message_stop
                yield piece
                break
            yield piece
            event = await events.__anext__()
    except Exception as exc:
        if not isinstance(exc, TrinferError):
            log.error("internal error mid-stream in request %s", info.request_id, exc_info=exc)
        info.ended_by = "error after streaming began: " + str(getattr(exc, "code", None) or "internal_error")
        yield encoder.error(exc, info.request_id)
    finally:
        events.cancel()


async def count_tokens(router: Router) -> Response:
    info = current_request()
    req = parse_count_tokens_request(parse_json(await read_body()))
    info.model = req.model
    route = router.route(req.model)
    with recording(route):
        counted = await route.handle.backend.count_tokens(req)
    return Response(encode_json(count_tokens_answer(counted)), status=200, mimetype="application/json")
