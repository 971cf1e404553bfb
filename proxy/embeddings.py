"""``POST /v1/embeddings``: answered only by backends with the ``embed`` capability, under admission."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response

from compat.json_body import parse_json
from compat.openai.embeddings import parse_embeddings_request, render_embeddings

from .body_parsing import parse_off_loop
from .breaker import Outcome
from .chat import acquire_slot, current_request, read_body, shutting_down
from .errors import encode_json
from .routing import recording

if TYPE_CHECKING:
    from .routing import Router


async def embeddings(router: Router) -> Response:
    info = current_request()
    body = await read_body()
    req = await parse_off_loop(len(body), lambda: parse_embeddings_request(parse_json(body)))
    info.model = req.model
    route = router.route(req.model, embed=True)
    try:
        slot = await acquire_slot(route.handle.admission, info)
    except BaseException:
        route.record(Outcome.NEUTRAL)
        raise
    try:
        with recording(route):
            with info.abortable() as scope:
                result = await route.handle.backend.embed(req.request)
            if scope.cancelled_caught:
                raise shutting_down()
    finally:
        slot.release()  # embed has returned (or raised): the backend is done with this request
    return Response(encode_json(render_embeddings(req, result)), status=200, mimetype="application/json")
