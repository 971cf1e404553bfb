"""``POST /v1/responses``: parse, run through `proxy.pipeline`, answer as one ``response`` object or as the
Responses API's typed SSE events (``event:`` lines, ``sequence_number``, no ``[DONE]``).

A failure before the first event is a status with the OpenAI error body; after it (streaming), one
``response.failed`` event ends the stream (`compat.openai.responses_stream.ResponseSSE`). Nothing is stored,
so the routes that would read a stored response answer 404 (`stored_response`).
"""

from __future__ import annotations

from compat.errors import RouteNotFound
from compat.openai.responses_request import parse_responses_request
from compat.openai.responses_stream import ResponseEncoder, ResponseSSE, new_response_id

from . import pipeline
from .request_io import Exchange, Reply, json_reply
from .services import Services
from .sse import sse_response


async def create_response(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    parsed = await exchange.read_parsed(parse_responses_request)
    info.model = parsed.model
    generation = await pipeline.generate(services.router, parsed.request, info, stream=parsed.stream)
    encoder = ResponseEncoder(new_response_id(), int(services.clock()), parsed.model, parsed.settings)
    if parsed.stream:
        return sse_response(generation, ResponseSSE(encoder), info)
    encoder.start()
    for event in await generation.collect():
        encoder.encode(event)
    return json_reply(encoder.response())


def stored_response(response_id: str) -> RouteNotFound:
    """The 404 of every route that would read a stored response: this server stores none."""
    return RouteNotFound(
        f"Response with id '{response_id[:64]}' not found: this server is stateless and stores no responses.",
        param="response_id",
        code="response_not_found",
    )
