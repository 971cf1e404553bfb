"""``POST /v1/embeddings``: answered only by backends with the ``embed`` capability, under admission
(`proxy.pipeline.embed`); token-id input only by those that also say ``embed_token_ids``."""

from __future__ import annotations

from compat.openai.embeddings import parse_embeddings_request, render_embeddings

from . import pipeline
from .request_io import Exchange, Reply, json_reply
from .services import Services


async def embeddings(services: Services, exchange: Exchange) -> Reply:
    info = exchange.info
    req = await exchange.read_parsed(parse_embeddings_request)
    info.model = req.model
    result = await pipeline.embed(services.router, req.request, info)
    return json_reply(render_embeddings(req, result))
