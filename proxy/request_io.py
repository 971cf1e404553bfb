"""One request of a direct route (`proxy.direct_routes`), as its view sees it: the `Exchange` (this request's
`RequestInfo` and body) and the `Reply` the view returns; and `json_response`, the JSON answer of the routes
quart serves.

`Exchange.read_body` reads the body off ASGI itself, with quart's two limits (``MAX_CONTENT_LENGTH`` and
``BODY_TIMEOUT``, set in `proxy.apps`): more than ``max_body_bytes`` is 413 ``request_too_large``, a body not
complete within ``body_timeout_s`` is 408 ``request_timeout``. Once the body is complete, the only message the
server can still send is ``http.disconnect``: from then on a task of the request (`watch_disconnect`) waits
for it and cancels the request's work, so a client that leaves in any phase - queued, before the first token,
mid-stream, waiting for a whole answer - stops its generation at once. A client that leaves while still
sending the body ends the request there (`ClientGone`).
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
    """One request on a direct route: its `RequestInfo` (``info``) and its body (`read_body`, `read_parsed`).

    ``cancel_scope`` is the scope the request's work runs in: `watch_disconnect` cancels it when the client
    leaves after its body was read.
    """

    __slots__ = ("_body_timeout", "_max_body", "_receive", "cancel_scope", "info")

    def __init__(
        self,
        info: RequestInfo,
        receive: Receive,
        cancel_scope: trio.CancelScope,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self.info = info
        self.cancel_scope = cancel_scope
        self._receive = receive
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_s

    async def read_body(self) -> bytes:
        """The whole body; then the request watches for the client leaving (see the module docstring).

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
        self.info.owned_nursery().start_soon(watch_disconnect, self._receive, self.cancel_scope)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def read_parsed(self, parse: Callable[[object], T]) -> T:
        """``parse`` (a dialect's request parser) of the decoded JSON body; a large body is decoded and parsed
        off the event loop, and what it parsed to is freed in pieces once the request ends
        (`proxy.body_parsing`)."""
        return await parse_body(await self.read_body(), parse, self.info.owned_nursery())


async def watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Wait for ``http.disconnect`` (after the body, nothing else comes) and cancel ``scope``. The request's
    nursery cancels this task when the request ends first."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
