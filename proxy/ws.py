"""``GET /v1/ws``: many chat streams over one WebSocket, each cancellable on its own (DESIGN.md section 6).

Theory of operation:
1. The handshake is checked before the socket opens: the same API keys as HTTP, from the ``Authorization``
   header or the ``openai-insecure-api-key.<key>`` subprotocol (echoed back only when that key is valid). A
   refused upgrade gets an HTTP 401 (503 while draining) with the OpenAI error body, and no socket.
2. One `WebSocketConnection` per socket owns a nursery. Its read loop parses each text frame with
   `compat.openai.ws_protocol.parse_client_frame`; a frame it cannot act on gets an ``error`` frame and the
   loop goes on. A binary frame closes the socket with 1003. Each ``create`` becomes one task in the nursery,
   inside its own cancel scope, bounded per socket by ``ws_max_requests_per_socket`` (over it: an ``error``
   frame for that id); a ``cancel`` cancels that scope.
3. A request runs through the same pipeline as ``POST /v1/chat/completions`` (`proxy.pipeline.generate`:
   routing, v1/v2 dispatch, admission, the producer that frees the slot after the backend returned, the
   breaker, the stop deadline) and the same `ChunkEncoder` as SSE. It is tracked in the daemon's `Inflight`,
   so the graceful stop waits for it and the stop deadline aborts it with ``server_shutting_down``, exactly
   like an HTTP request.
   Every request ends with one terminal frame: ``chat.completion.done``, or ``error`` (including
   ``request_cancelled`` after a client ``cancel``), sent only once its slot is free.
4. Frames are written one at a time, each in a shielded scope: a cancel never abandons a frame half-written
   (with permessage-deflate that would corrupt every later frame). That is safe because the listener bounds
   every socket write by ``write_timeout_s`` (`proxy.listener`): a client that stops reading has its
   connection closed, which reaches this handler as ``websocket.disconnect``, so every request on the socket
   is cancelled and frees its slot.
5. The client closing the socket cancels the handler (quart-trio cancels it on ``websocket.disconnect``) and
   with it every request of the socket. When the daemon drains, new ``create`` frames get
   ``server_shutting_down`` and the socket is closed with 1001 (going away) once its requests have ended.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial

import trio
from quart import Response, websocket
from werkzeug.datastructures import Headers

from adapters.errors import TrinferError
from adapters.types import Done
from compat.errors import (
    AuthenticationError,
    RequestCancelled,
    RequestValidationError,
    ShuttingDown,
    TooManyRequests,
)
from compat.openai.chat_response import ChunkEncoder, new_completion_id
from compat.openai.ws_protocol import (
    CancelFrame,
    CreateFrame,
    FrameEncoder,
    FrameError,
    error_frame,
    parse_client_frame,
)

from . import pipeline
from .auth import ApiKeys
from .body_parsing import THREAD_THRESHOLD_BYTES, parse_off_loop
from .errors import ErrorRenderers
from .inflight import Inflight, RequestInfo, new_request_id
from .log_values import loggable
from .logs import get_logger
from .metrics import CLIENT_CLOSED, Metrics
from .routing import Router
from .services import Services

log = get_logger("ws")

WS_PATH = "/v1/ws"
#: Browsers cannot set headers on a WebSocket: they may send the key as this subprotocol prefix instead.
KEY_SUBPROTOCOL_PREFIX = "openai-insecure-api-key."

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INTERNAL_ERROR = 1011

#: What a shielded write may take beyond its socket writes' own ``write_timeout_s`` bounds.
WRITE_GRACE_S = 2.0

SendText = Callable[[str], Awaitable[None]]


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


async def websocket_route(services: Services, errors: ErrorRenderers) -> Response | None:
    """The quart view of ``GET /v1/ws``: refuse the upgrade with a status, or accept and serve the socket."""
    request_id = new_request_id()
    refusal = await accept_upgrade(services, errors, WS_PATH, request_id)
    if refusal is not None:
        return refusal
    server = services.server
    connection = WebSocketConnection(
        receive=websocket.receive,
        send=websocket.send,
        close=websocket.close,
        router=services.router,
        inflight=services.inflight,
        draining=services.lifecycle.wait_draining,
        max_requests=server.ws_max_requests_per_socket,
        max_frame_bytes=server.max_body_bytes,
        connection_id=request_id,
        clock=services.clock,
        metrics=services.metrics,
        write_timeout_s=server.write_timeout_s,
    )
    await connection.run()
    return None


# --- one socket -------------------------------------------------------------------------------------------


class WebSocketConnection:
    """One accepted socket: reads frames, runs each request in its own task, writes frames. See the module
    docstring. ``receive``/``send``/``close`` are the framework's socket functions (quart's ``websocket``).
    """

    def __init__(
        self,
        *,
        receive: Callable[[], Awaitable[str | bytes | None]],
        send: SendText,
        close: Callable[[int, str], Awaitable[None]],
        router: Router,
        inflight: Inflight,
        draining: Callable[[], Awaitable[None]],
        max_requests: int,
        max_frame_bytes: int,
        connection_id: str,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        write_timeout_s: float = math.inf,
    ) -> None:
        self._receive = receive
        self._send = send
        self._close = close
        self._router = router
        self._inflight = inflight
        self._wait_draining = draining
        self._max_requests = max_requests
        self._max_frame_bytes = max_frame_bytes
        self.connection_id = connection_id
        self._clock = clock
        self._metrics = metrics
        self._write_lock = trio.Lock()
        #: The backstop deadline of one shielded write: its own bounded socket write after the one before it.
        self._write_bound_s = 2 * write_timeout_s + WRITE_GRACE_S
        #: Requests in flight (id -> the scope a cancel frame cancels), until their terminal frame is due.
        self._requests: dict[str, trio.CancelScope] = {}
        #: Request tasks still running (their terminal frame may not be written yet).
        self._tasks = 0
        self._idle = trio.Event()
        self._idle.set()
        self._draining = False
        self._closed = False
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Serve the socket until the client leaves (or is cut off), sends a binary frame, or the daemon drains."""
        log.info("WS %s open id=%s", WS_PATH, self.connection_id)
        ended = "client closed the socket"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._close_when_drained)
                ended = await self._read_frames()
                nursery.cancel_scope.cancel()
        except Exception as exc:
            ended = "internal error: closed with 1011"
            log.error("internal error on WS socket %s", self.connection_id, exc_info=exc)
            if not self._closed:
                await self._close_socket(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            if self._draining and self._closed:
                ended = "server shutting down: closed with 1001"
            log.info("WS %s closed id=%s (%s)", WS_PATH, self.connection_id, ended)

    async def _write(self, op: Callable[[], Awaitable[None]]) -> None:
        """One write (a frame or the close), after the ones queued before it, never abandoned half-way.

        The shield is bounded: the listener closes a connection whose write is stuck for ``write_timeout_s``
        (or past the stop deadline), and hypercorn's send returns at once on a closed connection; the deadline
        here is only a backstop behind that (by then the socket is closed, so no half-frame can be read).
        """
        async with self._write_lock:
            with trio.move_on_after(self._write_bound_s, shield=True):
                await op()
        await trio.lowlevel.checkpoint()  # a send on a closed connection returns without a checkpoint

    async def _send_frame(self, text: str) -> None:
        await self._write(partial(self._send, text))

    async def _close_socket(self, code: int, reason: str) -> None:
        self._closed = True
        await self._write(partial(self._close, code, reason))

    async def _read_frames(self) -> str:
        while True:
            message = await self._receive()
            if not isinstance(message, str):
                await self._close_socket(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")
                return "binary frame: closed with 1003"
            try:
                large = len(message) >= THREAD_THRESHOLD_BYTES
                frame = await parse_off_loop(
                    len(message),
                    partial(parse_client_frame, message, max_bytes=self._max_frame_bytes, interruptible=large),
                )
            except FrameError as exc:
                await self._send_frame(error_frame(exc.frame_id, exc.error))
                continue
            if isinstance(frame, CancelFrame):
                scope = self._requests.get(frame.id)
                if scope is not None:
                    scope.cancel()
                continue
            refusal = self._refusal(frame)
            if refusal is not None:
                await self._send_frame(error_frame(frame.id, refusal))
                continue
            scope = trio.CancelScope()
            self._requests[frame.id] = scope
            self._tasks += 1
            self._idle = trio.Event()
            assert self._nursery is not None
            self._nursery.start_soon(self._run_request, frame, scope)

    def _refusal(self, frame: CreateFrame) -> TrinferError | None:
        if self._draining:
            return ShuttingDown("The server is shutting down; retry against another instance")
        if frame.id in self._requests:
            return RequestValidationError(
                f"a request with id {frame.id!r} is already in flight on this socket",
                param="id",
                code="duplicate_id",
            )
        if len(self._requests) >= self._max_requests:
            return TooManyRequests(
                f"This socket already runs {self._max_requests} requests (ws_max_requests_per_socket); "
                "wait for one to finish or open another socket"
            )
        return None

    async def _close_when_drained(self) -> None:
        await self._wait_draining()
        self._draining = True
        await self._idle.wait()
        await self._close_socket(CLOSE_GOING_AWAY, "server shutting down")
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    # --- one request ----------------------------------------------------------------------------------

    async def _run_request(self, frame: CreateFrame, scope: trio.CancelScope) -> None:
        started = trio.current_time()
        info = RequestInfo(
            new_request_id(), "WS", WS_PATH, model=frame.chat.model, started=started, metrics=self._metrics
        )
        sent = False
        try:
            with self._inflight.track(info):
                terminal: str | None = None
                with scope:
                    async with trio.open_nursery() as nursery:
                        info.nursery = nursery
                        terminal = await self._stream(frame, info)
                del self._requests[frame.id]  # a cancel frame from now on finds nothing to cancel
                if terminal is None:  # only a client cancel gets here: any other cancellation propagates
                    info.ended_by = "cancelled by the client"
                    terminal = error_frame(frame.id, RequestCancelled("The request was cancelled by the client"))
                await self._send_frame(terminal)
                sent = True
        finally:
            self._requests.pop(frame.id, None)
            self._tasks -= 1
            if not self._tasks:
                self._idle.set()
            duration = trio.current_time() - started
            if self._metrics is not None:
                status = str(info.status) if sent and info.status is not None else CLIENT_CLOSED
                self._metrics.observe_request(WS_PATH, info.model, status, duration)
            log.info(
                "WS %s %s %.1fms id=%s socket=%s model=%s (%s)",
                WS_PATH,
                loggable(frame.id),
                duration * 1000,
                info.request_id,
                self.connection_id,
                loggable(info.model),
                (info.ended_by or "done") if sent else "socket closed",
            )

    async def _stream(self, frame: CreateFrame, info: RequestInfo) -> str:
        """Stream one request's chunk frames; return its terminal frame (done or error), not yet sent."""
        chat = frame.chat
        encoder = FrameEncoder(
            frame.id, ChunkEncoder(chat.model, new_completion_id(), int(self._clock()), chat.include_usage)
        )
        generation: pipeline.Generation | None = None
        try:
            generation = await pipeline.generate(self._router, chat.request, info, stream=True)
            async for batch in generation:  # the batch with Done comes once the slot is free
                for event in batch:
                    frames = encoder.encode(event)
                    done = frames.pop() if isinstance(event, Done) else None
                    for text in frames:
                        await self._send_frame(text)
                    if done is not None:
                        info.status = 200
                        return done
            raise AssertionError("a generation ends with Done or raises")
        except Exception as exc:
            if not isinstance(exc, TrinferError):
                log.error("internal error in WS request %s", info.request_id, exc_info=exc)
            info.ended_by = "error: " + str(getattr(exc, "code", None) or "internal_error")
            info.status = exc.http_status if isinstance(exc, TrinferError) else 500
            return error_frame(frame.id, exc, info.request_id)
        finally:
            if generation is not None:
                generation.cancel()
