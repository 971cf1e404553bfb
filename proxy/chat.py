"""``POST /v1/chat/completions``: parse, run through `proxy.pipeline`, answer as one JSON object or as SSE.

A failure before the first event is a status with the OpenAI error body; after it (streaming), one SSE error
event and no ``[DONE]`` (`proxy.sse`).
"""

from __future__ import annotations

from compat.openai.chat_request import parse_chat_request
from compat.openai.chat_response import ChunkEncoder, CompletionAccumulator, new_completion_id
from compat.openai.sse import ChatSSEEncoder

from . import pipeline
from .request_io import Exchange, Reply, json_reply
from .services import Services
from .sse import sse_response


async def chat_completions(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    chat = await exchange.read_parsed(parse_chat_request)
    info.model = chat.model
    generation = await pipeline.generate(services.router, chat.request, info, stream=chat.stream)
    completion_id, created = new_completion_id(), int(services.clock())
    if chat.stream:
        chunks = ChunkEncoder(chat.model, completion_id, created, chat.include_usage)
        return sse_response(generation, ChatSSEEncoder(chunks), info)
    accumulator = CompletionAccumulator(chat.model, completion_id, created)
    for event in await generation.collect():
        accumulator.add(event)
    return json_reply(accumulator.result())
