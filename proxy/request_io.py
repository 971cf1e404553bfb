"""One request of a direct route (`proxy.direct_routes`), as its view sees it: the `Exchange` (this request's
`RequestInfo` and body) and the `Reply` the view returns; and `json_response`, the JSON answer of the routes
quart serves.

`Exchange.read_body` reads the body off ASGI itself, with quart's two limits (``MAX_CONTENT_LENGTH`` and
``BODY_TIMEOUT``, set in `proxy.apps`): more than ``max_body_bytes`` is 413 ``request_too_large``, a body not
complete within ``body_timeout_s`` is 408 ``request_timeout``.

A client that leaves cancels the request's work in any phase - sending its body, queued, before the first
token, mid-stream, waiting for a whole answer - so its generation stops at once: trinfer's listener tells
the request directly (`proxy.http11.Hangup`, which `proxy.direct_routes` sets to cancel the view), so
no task per request has to wait on ``receive`` for ``http.disconnect``. A disconnect message read while the
body is still arriving ends the request there too (`ClientGone`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

import trio
from quart import Response

from compat.errors import BodyTimeout

from .body_parsing import parse_body
from .errors import encode_json, too_large
from .inflight import RequestInfo

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

JSON = b"application/json"

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its request body was complete: there is nobody to answer."""


@dataclass(slots=True)
class Reply:
    """What a direct route answers: a status, a content type, the body (bytes, or pieces as they are made:
    an SSE stream) and any other headers (lowercase names)."""

    status: int
    content_type: bytes
    body: bytes | AsyncGenerator[bytes, None]
    headers: tuple[tuple[bytes, bytes], ...] = ()


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status, JSON, encode_json(body))


def json_response(body: Any, status: int = 200) -> Response:
    """The JSON answer of a route quart serves (``/health``, ``/v1/models``, the admin routes)."""
    return Response(encode_json(body), status=status, mimetype="application/json")


class Exchange:
    """One request on a direct route: its `RequestInfo` (``info``) and its body (`read_body`, `read_parsed`)."""

    __slots__ = ("_body_timeout", "_max_body", "_receive", "info")

    def __init__(
        self,
        info: RequestInfo,
        receive: Receive,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self.info = info
        self._receive = receive
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_s

    async def read_body(self) -> bytes:
        """The whole body.

        Raises 413 past ``max_body_bytes``, 408 when it is not complete within the body timeout, `ClientGone`
        when the client disconnected first.
        """
        pieces: list[bytes] = []
        size = 0
        with trio.move_on_after(self._body_timeout) as timer:
            while True:
                message = await self._receive()
                if message["type"] != "http.request":  # http.disconnect: the only other message
                    raise ClientGone
                piece = message.get("body", b"")
                if piece:
                    size += len(piece)
                    if size > self._max_body:
                        raise too_large(self._max_body)
                    pieces.append(piece)
                if not message.get("more_body", False):
                    break
        if timer.cancelled_caught:
            raise BodyTimeout("The request body was not received in time")
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def read_parsed(self, parse: Callable[[object], T]) -> T:
        """``parse`` (a dialect's request parser) of the decoded JSON body; a large body is decoded and parsed
        off the event loop, and what it parsed to is freed in pieces once the request ends
        (`proxy.body_parsing`)."""
        return await parse_body(await self.read_body(), parse, self.info.owned_nursery())
