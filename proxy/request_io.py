"""The few quart request/response helpers every HTTP view uses: this request's `RequestInfo`, its body (raw, or
decoded and parsed by a dialect's parser), a JSON response."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from quart import Response, request

from .body_parsing import parse_body
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


T = TypeVar("T")


async def read_parsed(parse: Callable[[object], T]) -> T:
    """``parse`` (a dialect's request parser) of the decoded JSON body; a large body is decoded and parsed off
    the event loop, and what it parsed to is freed in pieces once the request ends (`proxy.body_parsing`)."""
    return await parse_body(await read_body(), parse, current_request().owned_nursery())


def json_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, mimetype="application/json")
