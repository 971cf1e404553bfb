"""The few quart request/response helpers every HTTP view uses: this request's `RequestInfo`, its body, a
JSON response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from quart import Response, request

from .errors import encode_json
from .inflight import SCOPE_KEY, RequestInfo


def current_request() -> RequestInfo:
    """The `RequestInfo` the middleware put in this request's ASGI scope."""
    info: RequestInfo = cast(Mapping[str, Any], request.scope)[SCOPE_KEY]
    return info


async def read_body() -> bytes:
    """The request body (413 past ``max_body_bytes``, 408 when it stops arriving: see `proxy.apps`)."""
    body = await request.get_data()
    return body if isinstance(body, bytes) else body.encode()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype="application/json")
