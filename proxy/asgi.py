"""The ASGI middleware in front of each quart app: request ids, ownership, write timeout, early refusals.

Per HTTP request it:
- assigns a request id, returned in the ``x-request-id`` header of every response and used in the log line;
- opens a nursery owned by the request (``RequestInfo.nursery``, in ``scope["trinfer.request"]``): generation
  producers run there, so whatever ends the request - completion, client disconnect, write timeout, stop
  deadline - cancels them, and the request is over only once they have returned;
- answers CORS preflights (with well-formed headers) before auth and routing, without a key, and adds the
  CORS headers to every response for an allowed origin (`proxy.cors`);
- refuses at once, without reading the body: a malformed ``Host`` or several ``Authorization`` headers (400,
  `proxy.header_checks`), a browser request from an origin neither allowed nor the server's own (403,
  `proxy.cors`), requests while draining (503), requests without a valid API key (401, except
  ``/health`` and ``/ready``; under ``x_api_key_prefixes`` the key may also come as ``x-api-key``, Anthropic's
  header), and a declared ``Content-Length`` over ``max_body_bytes`` (413);
- turns an exception that escapes the app into a 500 with the request id (logged, details not sent);
- logs one line per request: method, path, status, duration, request id, model (the client's values escaped
  and capped by `proxy.log_values.loggable`).
(Slow readers are handled below the app, in `proxy.listener`: every socket write is bounded by
``write_timeout_s`` and a stalled connection is closed, which reaches the request as a client disconnect.)
WebSocket scopes get only the header and origin checks (an upgrade that fails them is refused with the HTTP error
response); the WebSocket route does its own auth handshake. Lifespan scopes pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from compat.errors import ShuttingDown

from .auth import PUBLIC_PATHS, ApiKeys
from .cors import NO_CORS, CorsPolicy, is_preflight
from .errors import ErrorRenderers, log_level_for, too_large
from .header_checks import header_refusal
from .inflight import SCOPE_KEY, Inflight, RequestInfo, new_request_id
from .log_values import loggable
from .logs import FIELDS, get_logger
from .metrics import CLIENT_CLOSED, NO_BACKEND, Metrics, Rejection

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

log = get_logger("http")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request's headers by lowercased name, read once per request; a repeated name keeps its first value
    (`header_refusal`, which sees the raw list, refuses the repeats that matter)."""
    return {bytes(key).lower(): bytes(value) for key, value in reversed(scope.get("headers", ()))}


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[0] is not None
    return isinstance(exc, trio.Cancelled)


class RequestMiddleware:
    """See the module docstring. ``inflight`` (the inference listener only) is what the graceful stop drains;
    ``draining()`` true makes every route but ``/health`` answer 503 ``server_shutting_down``; ``errors``
    renders every error this middleware sends in the dialect of the request's path.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_keys: ApiKeys,
        max_body_bytes: int,
        inflight: Inflight | None = None,
        draining: Callable[[], bool] = lambda: False,
        errors: ErrorRenderers | None = None,
        x_api_key_prefixes: tuple[str, ...] = (),
        metrics: Metrics | None = None,
        route_of: Callable[[str, str], str] = lambda method, path: path,
        cors: CorsPolicy = NO_CORS,
    ) -> None:
        self.app = app
        self._x_api_key_prefixes = x_api_key_prefixes
        self._metrics = metrics
        self._route_of = route_of
        self._errors = errors if errors is not None else ErrorRenderers()
        self._cors = cors
        self._keys = api_keys
        self._max_body = max_body_bytes
        self._inflight = inflight
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            refusal = header_refusal(scope["headers"]) or self._origin_refusal(_headers(scope))
            if refusal is None:
                await self.app(scope, receive, send)
            else:
                await self._refuse_upgrade(send, refusal, scope["path"])
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = trio.current_time()
        info = RequestInfo(
            new_request_id(), scope["method"], scope["path"], started=started, metrics=self._metrics
        )
        scope[SCOPE_KEY] = info
        try:
            if self._inflight is not None and scope["path"] != "/health":
                with self._inflight.track(info):
                    await self._serve(info, scope, receive, send)
            else:
                await self._serve(info, scope, receive, send)
        except BaseException as exc:
            # Cancelled from above (trio.Cancelled, maybe inside the request nursery's group): the stop cut the
            # request short, or the whole server is going down at once.
            if _is_cancellation(exc) and not info.response_complete and info.ended_by is None:
                info.ended_by = "cut by shutdown" if self._draining() else "cancelled by the server"
            raise
        finally:
            duration = trio.current_time() - started
            route = self._route_of(info.method, info.path)
            self._log_line(info, route, duration)
            if self._metrics is not None:
                status = str(info.status) if info.status is not None else CLIENT_CLOSED
                self._metrics.observe_request(route, info.model, status, duration)

    async def _serve(self, info: RequestInfo, scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False
        response_complete = False
        headers = _headers(scope)
        origin = _header(headers, b"origin")
        cors_headers = self._cors.response_headers(origin)

        async def tagged_send(message: Message) -> None:
            nonlocal response_started, response_complete
            if message.get("more_body", False) and message["type"] == "http.response.body":
                await send(message)  # a streamed body piece (every token of a stream): nothing to note
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                response_complete = info.response_complete = True
            if message["type"] == "http.response.start":
                response_started = True
                info.status = int(message["status"])
                headers = [*message.get("headers", ()), (b"x-request-id", info.request_id.encode()), *cors_headers]
                message = {**message, "headers": headers}
            await send(message)

        async with trio.open_nursery() as nursery:
            info.nursery = nursery
            try:
                malformed = header_refusal(scope["headers"])
                requested_method = _header(headers, b"access-control-request-method")
                if origin is not None and malformed is None and is_preflight(scope["method"], requested_method):
                    await self._preflight(tagged_send, headers, origin, info)
                    return  # (a malformed preflight is refused below, like any request)
                refusal = malformed or self._early_refusal(scope["path"], headers)
                if refusal is not None:
                    if isinstance(refusal, ShuttingDown) and self._metrics is not None:
                        self._metrics.observe_rejection(NO_BACKEND, Rejection.SHUTTING_DOWN)
                    await self._send_error(tagged_send, refusal, info, close=True)
                    return
                await self.app(scope, receive, tagged_send)
            except Exception as exc:
                if response_started:
                    log.error("request %s failed after its response started", info.request_id, exc_info=exc)
                else:
                    await self._send_error(tagged_send, exc, info, close=True)
            finally:
                if nursery.child_tasks:  # (cancelling costs: trio records the cancelling task's repr)
                    nursery.cancel_scope.cancel()
        if not response_complete and info.ended_by is None:
            info.ended_by = "client disconnected"

    def _early_refusal(self, path: str, headers: dict[bytes, bytes]) -> Exception | None:
        """The refusal of a well-formed request (`header_refusal` has passed it), or None to serve it."""
        cross_origin = self._origin_refusal(headers)
        if cross_origin is not None:
            return cross_origin
        if self._draining() and path != "/health":
            return ShuttingDown("The server is shutting down; retry against another instance")
        if path not in PUBLIC_PATHS:
            try:
                x_api_key = _header(headers, b"x-api-key") if self._takes_x_api_key(path) else None
                self._keys.check_header(_header(headers, b"authorization"), x_api_key=x_api_key)
            except Exception as exc:
                return exc
        length = _header(headers, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self._max_body:
            return too_large(self._max_body)
        return None

    def _origin_refusal(self, headers: dict[bytes, bytes]) -> Exception | None:
        """403 for a browser request from an origin neither allowed nor the server's own (`proxy.cors`)."""
        return self._cors.refusal(_header(headers, b"origin"), _header(headers, b"host"))

    def _takes_x_api_key(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self._x_api_key_prefixes)

    async def _preflight(self, send: Send, headers: dict[bytes, bytes], origin: str, info: RequestInfo) -> None:
        """204 with the CORS headers for an allowed origin (``send`` adds the ones every response gets), 403 with
        an error body otherwise; no key needed."""
        try:
            allowed = self._cors.preflight(origin, _header(headers, b"access-control-request-headers"))
        except Exception as exc:
            await self._send_error(send, exc, info, close=False)
            return
        await send({"type": "http.response.start", "status": 204, "headers": allowed})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_error(self, send: Send, exc: BaseException, info: RequestInfo, *, close: bool) -> None:
        error = self._errors.render(exc, info.request_id, info.path)
        raw = error.raw_headers()
        raw.append((b"content-length", str(len(error.body)).encode()))
        if close:
            raw.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": error.status, "headers": raw})
        await send({"type": "http.response.body", "body": error.body, "more_body": False})

    async def _refuse_upgrade(self, send: Send, exc: Exception, path: str) -> None:
        """Refuse a WebSocket upgrade with an HTTP error response (ASGI's ``websocket.http.response``)."""
        request_id = new_request_id()
        error = self._errors.render(exc, request_id, path)
        raw = error.raw_headers()
        raw += [(b"content-length", str(len(error.body)).encode()), (b"x-request-id", request_id.encode())]
        await send({"type": "websocket.http.response.start", "status": error.status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": error.body, "more_body": False})
        log.info("WS %s %s refused id=%s", path, error.status, request_id)

    def _log_line(self, info: RequestInfo, route: str, duration_s: float) -> None:
        status = info.status if info.status is not None else "-"
        level = log_level_for(info.status, info.path) if info.status is not None else logging.INFO
        usage = info.usage
        method, path = loggable(info.method), loggable(info.path)
        model = loggable(info.model) if info.model is not None else None
        fields = {
            "request_id": info.request_id,
            "method": method,
            "route": route,
            "path": path,
            "model": model,
            "status": info.status,
            "duration_ms": round(duration_s * 1000, 1),
            "ttft_ms": round(info.ttft_s * 1000, 1) if info.ttft_s is not None else None,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "ended_by": info.ended_by,
        }
        log.log(
            level,
            "%s %s %s %.1fms id=%s model=%s%s",
            method,
            path,
            status,
            duration_s * 1000,
            info.request_id,
            model or "-",
            f" ({info.ended_by})" if info.ended_by else "",
            extra={FIELDS: fields},
        )
