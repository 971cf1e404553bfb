"""``POST /v1/embeddings``: answered only by backends with the ``embed`` capability, under admission.

Token-id input goes only to a backend that says ``embed_token_ids`` (its own vocabulary ids); any other answers
400 ``unsupported_parameter`` before taking an admission slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response

from compat.errors import UnsupportedParameter
from compat.json_body import parse_json
from compat.openai.embeddings import parse_embeddings_request, render_embeddings

from .breaker import Outcome
from .chat import acquire_slot, current_request, read_body, shutting_down
from .errors import encode_json
from .routing import recording

if TYPE_CHECKING:
    from .routing import Router


async def embeddings(router: Router) -> Response:
    info = current_request()
    req = parse_embeddings_request(parse_json(await read_body()))
    info.model = req.model
    route = router.route(req.model, embed=True)
    try:
        if req.request.token_ids and not route.handle.backend.capabilities().embed_token_ids:
            raise UnsupportedParameter(
                f"The model '{req.model}' takes text input only: its backend cannot embed token ids.",
                param="input",
            )
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
