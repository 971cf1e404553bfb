"""``GET /v1/responses`` (WebSocket): the Responses API over one persistent socket, as the openai SDK's
``client.responses.connect()`` speaks it (DESIGN.md section 8).

Theory of operation:
1. The handshake is the one of ``/v1/ws`` (`proxy.ws.accept_upgrade`: ``Authorization: Bearer`` or the key
   subprotocol; 503 while draining); a refused upgrade gets an HTTP status with the OpenAI error body.
2. One `ResponsesSocket` per socket owns a nursery. Its read loop parses each text frame
   (`compat.openai.responses_ws.parse_client_event`); a frame it cannot act on gets an ``error`` event and the
   loop goes on; a binary frame closes the socket with 1003.
3. One response at a time: a ``response.create`` starts a task in the nursery; another one while it runs gets
   an ``error`` event (``response_in_progress``) and changes nothing. Responses on one socket run in sequence.
4. A response runs through the same pipeline as ``POST /v1/responses`` (`proxy.pipeline.generate`: routing,
   dispatch, admission, the owned producer, the breaker) and the same `ResponseEncoder`; it is tracked
   in the daemon's `Inflight`, so the graceful stop waits for it and its deadline aborts it. A failure before
   the first event is an ``error`` event; after it, ``response.failed``. The batch holding `Done` arrives
   only once the slot is free, so the last event of a response is too.
5. Frames are written one at a time, each shielded (a cancel never abandons a frame half-written); the
   listener bounds every write by ``write_timeout_s``, so a client that stops reading is disconnected.
6. The client closing the socket cancels the handler and with it the running response. While the daemon
   drains, ``response.create`` gets ``server_shutting_down`` and the socket closes with 1001 once idle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, websocket

from adapters.errors import TrinferError
from adapters.types import Done
from compat.errors import ShuttingDown
from compat.openai.responses_request import ResponsesRequest
from compat.openai.responses_stream import ResponseEncoder, new_response_id
from compat.openai.responses_ws import (
    ClientEventError,
    ResponseInProgress,
    error_event,
    event_frame,
    parse_client_event,
)

from . import pipeline
from .errors import ErrorRenderers
from .inflight import Inflight, RequestInfo, new_request_id
from .logs import get_logger
from .metrics import CLIENT_CLOSED, Metrics
from .services import Services
from .ws import CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_UNSUPPORTED_DATA, WRITE_GRACE_S, accept_upgrade

if TYPE_CHECKING:
    from .routing import Router

log = get_logger("responses_ws")

PATH = "/v1/responses"


def busy() -> ResponseInProgress:
    return ResponseInProgress(
        "A response is already running on this socket; wait for its last event (response.completed, "
        "response.incomplete or response.failed) or open another socket"
    )


async def responses_socket_route(services: Services, errors: ErrorRenderers) -> Response | None:
    """The quart view: refuse the upgrade with a status, or accept it and serve the socket."""
    request_id = new_request_id()
    refusal = await accept_upgrade(services, errors, PATH, request_id)
    if refusal is not None:
        return refusal
    socket = ResponsesSocket(
        receive=websocket.receive,
        send=websocket.send,
        close=websocket.close,
        router=services.router,
        inflight=services.inflight,
        draining=services.lifecycle.wait_draining,
        max_frame_bytes=services.server.max_body_bytes,
        connection_id=request_id,
        clock=services.clock,
        write_timeout_s=services.server.write_timeout_s,
        metrics=services.metrics,
    )
    await socket.run()
    return None


class ResponsesSocket:
    """One accepted socket (see the module docstring); ``receive``/``send``/``close`` are quart's."""

    def __init__(
        self,
        *,
        receive: Callable[[], Awaitable[str | bytes | None]],
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        router: Router,
        inflight: Inflight,
        draining: Callable[[], Awaitable[None]],
        max_frame_bytes: int,
        connection_id: str,
        clock: Callable[[], float],
        write_timeout_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._receive = receive
        self._send = send
        self._close = close
        self._router = router
        self._inflight = inflight
        self._wait_draining = draining
        self._max_frame_bytes = max_frame_bytes
        self.connection_id = connection_id
        self._clock = clock
        self._write_lock = trio.Lock()
        #: The backstop deadline of one shielded write (as `proxy.ws.WebSocketConnection`'s).
        self._write_bound_s = 2 * write_timeout_s + WRITE_GRACE_S
        #: True from a response's start until its last event is due (then the next one may start).
        self._running = False
        #: Response tasks not yet returned (one may still be unwinding while the next one runs).
        self._tasks = 0
        self._idle = trio.Event()
        self._idle.set()
        self._draining = False
        self._closed = False

    async def run(self) -> None:
        log.info("WS %s open id=%s", PATH, self.connection_id)
        ended = "client closed the socket"
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_when_drained, nursery.cancel_scope)
                ended = await self._read_frames(nursery)
                nursery.cancel_scope.cancel()
        except Exception as exc:
            ended = "internal error: closed with 1011"
            log.error("internal error on WS socket %s", self.connection_id, exc_info=exc)
            if not self._closed:
                await self._close_socket(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            if self._draining and self._closed:
                ended = "server shutting down: closed with 1001"
            log.info("WS %s closed id=%s (%s)", PATH, self.connection_id, ended)

    async def _write(self, op: Callable[[], Awaitable[None]], *, last_of_response: bool = False) -> None:
        """One write after the ones before it, never abandoned half-way: the listener bounds each socket write
        by ``write_timeout_s`` and closes a stalled connection; the deadline here is only a backstop behind it.

        ``last_of_response``: the response is over once this write starts; the next ``response.create`` may
        then start another, whose writes queue behind this one (the lock is already held).
        """
        async with self._write_lock:
            if last_of_response:
                self._running = False
            with trio.move_on_after(self._write_bound_s, shield=True):
                await op()
        await trio.lowlevel.checkpoint()  # a send on a closed connection returns without a checkpoint

    async def _send_events(self, events: list[dict[str, Any]], *, last_of_response: bool = False) -> None:
        for index, event in enumerate(events, 1):
            last = last_of_response and index == len(events)
            await self._write(partial(self._send, event_frame(event)), last_of_response=last)

    async def _close_socket(self, code: int, reason: str) -> None:
        self._closed = True
        await self._write(partial(self._close, code, reason))

    async def _read_frames(self, nursery: trio.Nursery) -> str:
        while True:
            message = await self._receive()
            if not isinstance(message, str):
                await self._close_socket(CLOSE_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")
                return "binary frame: closed with 1003"
            try:
                parsed = parse_client_event(message, max_bytes=self._max_frame_bytes)
            except ClientEventError as exc:
                await self._send_events([error_event(exc.error)])
                continue
            if self._draining:
                await self._send_events([error_event(ShuttingDown("The server is shutting down"))])
            elif self._running:
                await self._send_events([error_event(busy())])
            else:
                self._running = True
                self._tasks += 1
                self._idle = trio.Event()
                nursery.start_soon(self._run_response, parsed)

    async def _close_when_drained(self, scope: trio.CancelScope) -> None:
        await self._wait_draining()
        self._draining = True
        await self._idle.wait()
        await self._close_socket(CLOSE_GOING_AWAY, "server shutting down")
        scope.cancel()

    async def _run_response(self, parsed: ResponsesRequest) -> None:
        started = trio.current_time()
        info = RequestInfo(
            new_request_id(), "WS", PATH, model=parsed.model, started=started, metrics=self._metrics
        )
        try:
            with self._inflight.track(info):
                async with trio.open_nursery() as nursery:
                    info.nursery = nursery
                    await self._stream(parsed, info)
        finally:
            self._tasks -= 1
            if not self._tasks:
                self._running = False  # already so, unless the response ended without its last event
                self._idle.set()
            duration = trio.current_time() - started
            if self._metrics is not None:
                status = str(info.status) if info.status is not None else CLIENT_CLOSED
                self._metrics.observe_request(PATH, info.model, status, duration)
            log.info(
                "WS %s response %.1fms id=%s socket=%s model=%s (%s)",
                PATH,
                duration * 1000,
                info.request_id,
                self.connection_id,
                info.model,
                info.ended_by or "done",
            )

    async def _stream(self, parsed: ResponsesRequest, info: RequestInfo) -> None:
        """Send one response's events (its last one comes after the slot is free, see the module docstring)."""
        encoder = ResponseEncoder(new_response_id(), int(self._clock()), parsed.model, parsed.settings)
        generation: pipeline.Generation | None = None
        try:
            generation = await pipeline.generate(self._router, parsed.request, info, stream=True)
            async for batch in generation:
                for event in batch:
                    items = [*([] if encoder.started else encoder.start()), *encoder.encode(event)]
                    await self._send_events(items, last_of_response=isinstance(event, Done))
            info.status = 200
        except Exception as exc:
            if not isinstance(exc, TrinferError):
                log.error("internal error in WS response %s", info.request_id, exc_info=exc)
            info.ended_by = "error: " + str(getattr(exc, "code", None) or "internal_error")
            info.status = exc.http_status if isinstance(exc, TrinferError) else 500
            final = encoder.fail(exc, info.request_id) if encoder.started else [error_event(exc, info.request_id)]
            await self._send_events(final, last_of_response=True)
        finally:
            if generation is not None:
                generation.cancel()
