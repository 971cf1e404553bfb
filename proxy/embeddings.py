"""``POST /v1/embeddings``: answered only by backends with the ``embed`` capability, under admission
(`proxy.pipeline.embed`); token-id input only by those that also say ``embed_token_ids``."""

from __future__ import annotations

from quart import Response

from compat.json_body import parse_json
from compat.openai.embeddings import parse_embeddings_request, render_embeddings

from . import pipeline
from .body_parsing import parse_off_loop
from .request_io import current_request, json_response, read_body
from .services import Services


async def embeddings(services: Services) -> Response:
    info = current_request()
    body = await read_body()
    req = await parse_off_loop(len(body), lambda: parse_embeddings_request(parse_json(body)))
    info.model = req.model
    result = await pipeline.embed(services.router, req.request, info)
    return json_response(render_embeddings(req, result))
