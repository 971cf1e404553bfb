"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic Messages dialect's thin views.

Each is parse (`compat.anthropic`) -> `proxy.pipeline` -> encode (`compat.anthropic`). Errors under `PREFIX`
render in Anthropic's shape wherever they are raised (the route table's error dialects), and the key may come
as ``x-api-key`` there (`proxy.asgi`). A failure before the first event is a status; after it, one
``event: error`` ends the stream (`proxy.sse`).
"""

from __future__ import annotations

from compat.anthropic.request import parse_count_tokens_request, parse_messages_request
from compat.anthropic.response import MessageAccumulator, count_tokens_answer, new_message_id
from compat.anthropic.stream import EventEncoder, MessagesSSEEncoder

from . import pipeline
from .request_io import Exchange, Reply, json_reply
from .services import Services
from .sse import sse_response

#: The dialect's route prefix (``/v1/messages`` and below).
PREFIX = "/v1/messages"


async def messages(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    parsed = await exchange.read_parsed(parse_messages_request)
    info.model = parsed.model
    generation = await pipeline.generate(services.router, parsed.request, info, stream=parsed.stream)
    message_id, stops = new_message_id(), parsed.request.sampling.stop
    if parsed.stream:
        return sse_response(generation, MessagesSSEEncoder(EventEncoder(parsed.model, message_id, stops)), info)
    accumulator = MessageAccumulator(parsed.model, message_id, stops)
    for event in await generation.collect():
        accumulator.add(event)
    return json_reply(accumulator.result())


async def count_tokens(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    req = await exchange.read_parsed(parse_count_tokens_request)
    info.model = req.model
    return json_reply(count_tokens_answer(await pipeline.count_tokens(services.router, req, info)))
