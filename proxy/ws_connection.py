"""What every WebSocket route shares: the handshake, and one accepted socket's frame loop and writes.

The routes (``GET /v1/ws`` in `proxy.ws`, ``GET /v1/responses`` in `proxy.responses_ws`) differ only in
what a text frame means and what they answer; the socket around that is this module's.

Theory of operation:
1. A route's view is `serve_socket`. The handshake (`accept_upgrade`) is checked before the socket opens: the
   same API keys as HTTP, from the ``Authorization`` header or the ``openai-insecure-api-key.<key>``
   subprotocol (echoed back only when that key is valid). A refused upgrade gets an HTTP 401 (503 while
   draining) with the error body of the route's dialect, and no socket.
2. One `FrameSocket` per accepted socket owns a nursery. Its read loop hands each text frame to the
   protocol's `FrameSocket.on_text`, which answers it or starts a task for it (`FrameSocket.start_task`);
   a binary frame closes the socket with 1003. An exception that escapes closes it with 1011 (logged; the
   client sees only the close code).
3. Frames are written one at a time, each in a shielded scope: a cancel never abandons a frame half-written
   (with permessage-deflate that would corrupt every later frame). That is safe because the listener bounds
   every socket write by ``write_timeout_s`` (`proxy.listener`): a client that stops reading has its
   connection closed, which reaches the handler as ``websocket.disconnect``; the shield's own deadline is only
   a backstop behind that.
4. The client closing the socket cancels the handler (quart-trio cancels it on ``websocket.disconnect``) and
   with it every task of the socket. When the daemon drains, `FrameSocket.draining` turns true (the protocol
   refuses new work with ``server_shutting_down``) and the socket is closed with 1001 (going away) once its
   tasks have ended.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Required, TypedDict, Unpack

import trio
from quart import Response, websocket
from werkzeug.datastructures import Headers

from adapters.errors import TrinferError
from compat.errors import AuthenticationError, ShuttingDown

from .inflight import Inflight, RequestInfo, new_request_id
from .logs import get_logger
from .metrics import CLIENT_CLOSED, Metrics

if TYPE_CHECKING:
    from .auth import ApiKeys
    from .errors import ErrorRenderers
    from .routing import Router
    from .services import Services

log = get_logger("ws")

#: Browsers cannot set headers on a WebSocket: they may send the key as this subprotocol prefix instead.
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INTERNAL_ERROR = 1011

#: What a shielded write may take beyond its socket writes' own ``write_timeout_s`` bounds.
WRITE_GRACE_S = 2.0


# --- the handshake ----------------------------------------------------------------------------------------


def authenticate(keys: ApiKeys, authorization: str | None, subprotocols: Iterable[str]) -> str | None:
    """Check the upgrade's credentials; return the subprotocol to echo (the key one, if valid), or None.

    The ``Authorization`` header, when present, decides alone (exactly as on HTTP); otherwise the first
    ``openai-insecure-api-key.<key>`` subprotocol does. Raises `AuthenticationError` naming neither key.
    A key subprotocol is echoed only when its key is itself valid: echoing a wrong key would tell the client
    that key was accepted (the header, not the subprotocol, authorised such a socket).
    """
    offered = next((p for p in subprotocols if p.startswith(KEY_SUBPROTOCOL_PREFIX)), None)
    key_ok = offered is not None and (
        not keys.enabled or keys.matches(offered.removeprefix(KEY_SUBPROTOCOL_PREFIX))
    )
    if authorization is not None or offered is None:
        keys.check_header(authorization)
    elif not key_ok:
        raise AuthenticationError("Incorrect API key provided.")
    return offered if key_ok else None


async def accept_upgrade(
    services: Services, errors: ErrorRenderers, path: str, request_id: str
) -> Response | None:
    """Accept this WebSocket upgrade, or answer the refusal to send instead (every WebSocket route's handshake).

    Refused: bad credentials (`authenticate`) and a draining daemon, as an HTTP status with the error body of
    ``path``'s dialect. Accepted: the socket is open (echoing the key subprotocol if that authorised it).
    """
    try:
        subprotocol = authenticate(
            services.api_keys, websocket.headers.get("Authorization"), websocket.requested_subprotocols
        )
        if services.lifecycle.draining():
            raise ShuttingDown("The server is shutting down; retry against another instance")
    except TrinferError as exc:
        log.info("WS %s %s refused id=%s", path, exc.http_status, request_id)
        refusal = errors.render(exc, request_id, path)
        return Response(refusal.body, status=refusal.status, headers=Headers(refusal.headers))
    await websocket.accept(subprotocol=subprotocol)
    return None


async def serve_socket(
    services: Services, errors: ErrorRenderers, path: str, make: Callable[[SocketParts], FrameSocket]
) -> Response | None:
    """A WebSocket route's quart view: refuse the upgrade with a status, or accept it and serve the socket
    ``make`` builds from the daemon's parts (the connection id is the upgrade's request id)."""
    request_id = new_request_id()
    refusal = await accept_upgrade(services, errors, path, request_id)
    if refusal is not None:
        return refusal
    server = services.server
    socket = make(
        SocketParts(
            receive=websocket.receive,
            send=websocket.send,
            close=websocket.close,
            router=services.router,
            inflight=services.inflight,
            draining=services.lifecycle.wait_draining,
            max_frame_bytes=server.max_body_bytes,
            connection_id=request_id,
            clock=services.clock,
            metrics=services.metrics,
            write_timeout_s=server.write_timeout_s,
        )
    )
    await socket.run()
    return None


# --- one socket -------------------------------------------------------------------------------------------


class SocketParts(TypedDict, total=False):
    """What a `FrameSocket` is built from (keyword arguments; a protocol adds its own)."""

    #: The framework's socket functions (quart's ``websocket.receive``/``send``/``close``).
    receive: Required[Callable[[], Awaitable[str | bytes | None]]]
    send: Required[Callable[[str], Awaitable[None]]]
    close: Required[Callable[[int, str], Awaitable[None]]]
    router: Required[Router]
    inflight: Required[Inflight]
    #: Returns once the daemon drains.
    draining: Required[Callable[[], Awaitable[None]]]
    #: The largest text frame a protocol parses (``max_body_bytes``).
    max_frame_bytes: Required[int]
    connection_id: Required[str]
    #: Wall-clock seconds, for the ``created`` fields (default `time.time`).
    clock: Callable[[], float]
    #: None: nothing is recorded.
    metrics: Metrics | None
    #: The listener's bound on one socket write (default none).
    write_timeout_s: float


class FrameSocket(ABC):
    """One accepted socket of a route at ``PATH`` (see the module docstring); a protocol subclasses it and says
    what a text frame means (`on_text`). ``receive``/``send``/``close`` are the framework's socket functions
    (quart's ``websocket``).
    """

    #: The route, for the log lines and the request metrics.
    PATH: ClassVar[str]
    #: What one task of the socket serves, for the log lines ("request", "response").
    ITEM: ClassVar[str]
    #: The protocol module's logger.
    LOG: ClassVar[logging.Logger]

    def __init__(self, **parts: Unpack[SocketParts]) -> None:
        self._receive = parts["receive"]
        self._send = parts["send"]
        self._close = parts["close"]
        self._router = parts["router"]
        self._inflight = parts["inflight"]
        self._wait_draining = parts["draining"]
        self._max_frame_bytes = parts["max_frame_bytes"]
        self.connection_id = parts["connection_id"]
        self._clock = parts.get("clock", time.time)
        self._metrics = parts.get("metrics")
        write_timeout_s = parts.get("write_timeout_s", math.inf)
        self._write_lock = trio.Lock()
        #: The backstop deadline of one shielded write: its own bounded socket write after the one before it.
        self._write_bound_s = 2 * write_timeout_s + WRITE_GRACE_S
        #: Tasks still running (their last frame may not be written yet).
        self._tasks = 0
        self._idle = trio.Event()
        self._idle.set()
        self._draining = False
        self._closed = False
        self._nursery: trio.Nursery | None = None

    @property
    def draining(self) -> bool:
        """True once the daemon drains: new work is refused, and the socket closes when its tasks have ended."""
        return self._draining

    async def run(self) -> None:
        """Serve the socket until the client leaves (or is cut off), sends a binary frame, or the daemon drains."""
        self.LOG.info("WS %s open id=%s", self.PATH, self.connection_id)
        ended = "client closed the socket"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._close_when_drained)
                ended = await self._read_frames()
                nursery.cancel_scope.cancel()
        except Exception as exc:
            ended = "internal error: closed with 1011"
            self.LOG.error("internal error on WS socket %s", self.connection_id, exc_info=exc)
            if not self._closed:
                await self._close_socket(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            if self._draining and self._closed:
                ended = "server shutting down: closed with 1001"
            self.LOG.info("WS %s closed id=%s (%s)", self.PATH, self.connection_id, ended)

    @abstractmethod
    async def on_text(self, message: str) -> None:
        """Act on one text frame: answer it (`send_text`) or start its task (`start_task`); never raise for a
        client's mistake (answer it with an error frame instead)."""

    def on_idle(self) -> None:  # noqa: B027 - a hook that most protocols need not override
        """Called when the socket's last running task has ended (before a drain may close the socket)."""

    def start_task(self, serve: Callable[[], Awaitable[None]]) -> None:
        """Run ``serve`` in the socket's nursery; a drain closes the socket only once every such task ended."""
        self._tasks += 1
        self._idle = trio.Event()
        assert self._nursery is not None
        self._nursery.start_soon(self._counted, serve)

    async def send_text(self, text: str, *, on_turn: Callable[[], None] | None = None) -> None:
        """Write one text frame (see `_write`)."""
        await self._write(partial(self._send, text), on_turn=on_turn)

    async def _counted(self, serve: Callable[[], Awaitable[None]]) -> None:
        try:
            await serve()
        finally:
            self._tasks -= 1
            if not self._tasks:
                self.on_idle()
                self._idle.set()

    async def _write(
        self, op: Callable[[], Awaitable[None]], *, on_turn: Callable[[], None] | None = None
    ) -> None:
        """One write (a frame or the close), after the ones queued before it, never abandoned half-way.

        ``on_turn`` runs once this write's turn has come (the lock is held), before it starts: what it changes
        holds for every write queued after this one. The shield is bounded: the listener closes a connection
        whose write is stuck for ``write_timeout_s`` (or past the stop deadline), and hypercorn's send returns
        at once on a closed connection; the deadline here is only a backstop behind that (by then the socket
        is closed, so no half-frame can be read).
        """
        async with self._write_lock:
            if on_turn is not None:
                on_turn()
            with trio.move_on_after(self._write_bound_s, shield=True):
                await op()
        await trio.lowlevel.checkpoint()  # a send on a closed connection returns without a checkpoint

    async def _close_socket(self, code: int, reason: str) -> None:
        self._closed = True
        await self._write(partial(self._close, code, reason))

    async def _read_frames(self) -> str:
        """Hand every text frame to `on_text`; return why the loop ended (a binary frame) for the log line."""
        while True:
            message = await self._receive()
            if not isinstance(message, str):
                await self._close_socket(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")
                return "binary frame: closed with 1003"
            await self.on_text(message)

    async def _close_when_drained(self) -> None:
        await self._wait_draining()
        self._draining = True
        await self._idle.wait()
        await self._close_socket(CLOSE_GOING_AWAY, "server shutting down")
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    # --- the bookkeeping of one task's request ------------------------------------------------------------

    def new_request(self, model: str) -> RequestInfo:
        """The `RequestInfo` of one generation the socket runs (tracked like an HTTP request's)."""
        return RequestInfo(
            new_request_id(), "WS", self.PATH, model=model, started=trio.current_time(), metrics=self._metrics
        )

    def record_failure(self, exc: Exception, info: RequestInfo) -> None:
        """Note a failed generation on ``info`` (status, why it ended); log it when it is not a `TrinferError`
        (that is a bug: the client gets a generic error)."""
        if not isinstance(exc, TrinferError):
            self.LOG.error("internal error in WS %s %s", self.ITEM, info.request_id, exc_info=exc)
        info.ended_by = "error: " + str(getattr(exc, "code", None) or "internal_error")
        info.status = exc.http_status if isinstance(exc, TrinferError) else 500

    def observe(self, info: RequestInfo, *, answered: bool) -> float:
        """Count one ended generation in the metrics (as ``CLIENT_CLOSED`` unless its last frame was written,
        ``answered``); return its duration in seconds, for the log line."""
        duration = trio.current_time() - info.started
        if self._metrics is not None:
            status = str(info.status) if answered and info.status is not None else CLIENT_CLOSED
            self._metrics.observe_request(self.PATH, info.model, status, duration)
        return duration
