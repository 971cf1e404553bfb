"""The routes that run generations, served straight off ASGI; every other request goes on to the quart app.

Every ``POST`` that makes a model work (chat completions, Responses, legacy completions, Anthropic Messages and
its token count, embeddings) is served here without quart's request and response objects, its URL map, its
request context and its two tasks per request. On a gateway hop, where the backend answers in about a
millisecond, those were a third of the CPU each request cost (docs/benchmarks.md, P8). A view is
``async (Exchange) -> Reply`` (`proxy.request_io`); what quart did for these routes is done here, the same way:

- a method other than ``POST`` on one of these paths is 405 with ``Allow: POST``; any other path is quart's;
- the body is read with quart's limits (413 past ``max_body_bytes``, 408 when it stops arriving);
- the view runs in a cancel scope that the client's disconnect cancels, in every phase, the response's own
  writes included: trinfer's listener (`proxy.listener`, the only server these apps run under) calls the
  request's `proxy.http11.Hangup` when the connection closes, where quart-trio ran a task per request to
  wait for ``http.disconnect``;
- an exception before the response started is answered in the route's dialect (`ErrorRenderers.render`,
  which also logs a bug), keeping the connection open as quart's error handler does; an SSE body handles its
  own failures in-band (`proxy.sse`);
- the reply goes out as one ``http.response.start`` and one body message (JSON), or one body message per
  piece and an empty last one (SSE); the body generator is closed whatever ends the request.

It runs inside `proxy.asgi.RequestMiddleware`, after its early refusals, so the request id, the request's
nursery, auth, CORS, the log line and the metrics are the same for both kinds of route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from functools import partial
from typing import Any

import trio

from compat.errors import MethodNotAllowed

from .errors import ErrorRenderers
from .http11 import HANGUP_KEY, Hangup
from .inflight import SCOPE_KEY, RequestInfo
from .request_io import JSON, ClientGone, Exchange, Message, Receive, Reply

Send = Callable[[Message], Awaitable[None]]
View = Callable[[Exchange], Awaitable[Reply]]
ASGIApp = Callable[..., Awaitable[None]]

METHOD = "POST"


class DirectRoutes:
    """An ASGI app: ``POST`` to a path of ``views`` is served by its view (module docstring), the rest by
    ``app``. ``max_body_bytes`` and ``body_timeout_s`` are the body's limits."""

    def __init__(
        self,
        app: ASGIApp,
        views: Mapping[str, View],
        *,
        errors: ErrorRenderers,
        max_body_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self.app = app
        self.paths = frozenset(views)
        self._views = dict(views)
        self._errors = errors
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout_s

    async def __call__(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        view = self._views.get(scope["path"]) if scope["type"] == "http" else None
        if view is None:
            await self.app(scope, receive, send)
            return
        info: RequestInfo = scope[SCOPE_KEY]
        if scope["method"] != METHOD:
            error = MethodNotAllowed(f"Method {scope['method']} is not allowed for {scope['path']}")
            await _send(self._error_reply(error, info, allow=[METHOD]), send)
            return
        with trio.CancelScope() as cancel_scope:
            hangup: Hangup = scope[HANGUP_KEY]
            hangup.on_hangup = partial(_hung_up, info, cancel_scope)
            exchange = Exchange(info, receive, max_body_bytes=self._max_body, body_timeout_s=self._body_timeout)
            try:
                reply = await view(exchange)
            except ClientGone:
                return
            except Exception as exc:
                reply = self._error_reply(exc, info)
            await _send(reply, send)

    def _error_reply(self, exc: BaseException, info: RequestInfo, *, allow: list[str] | None = None) -> Reply:
        """The error response of ``exc`` in the route's dialect (its Content-Type is the reply's own)."""
        error = self._errors.render(exc, info.request_id, info.path, allow=allow)
        headers = tuple(header for header in error.raw_headers() if header[0] != b"content-type")
        return Reply(error.status, JSON, error.body, headers)


def _hung_up(info: RequestInfo, scope: trio.CancelScope) -> None:
    """The connection closed: the client left, unless the whole response was already handed over."""
    if not info.response_complete:
        scope.cancel()


async def _send(reply: Reply, send: Send) -> None:
    headers = [(b"content-type", reply.content_type), *reply.headers]
    body = reply.body
    if isinstance(body, bytes):
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    async with aclosing(body) as pieces:
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        async for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
