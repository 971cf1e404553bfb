"""``POST /v1/embeddings``: answered only by backends with the ``embed`` capability, under admission
(`proxy.pipeline.embed`); token-id input only by those that also say ``embed_token_ids``."""

from __future__ import annotations

from quart import Response

from compat.openai.embeddings import parse_embeddings_request, render_embeddings

from . import pipeline
from .request_io import current_request, json_response, read_parsed
from .services import Services


async def embeddings(services: Services) -> Response:
    info = current_request()
    req = await read_parsed(parse_embeddings_request)
    info.model = req.model
    result = await pipeline.embed(services.router, req.request, info)
    return json_response(render_embeddings(req, result))
