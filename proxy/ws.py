"""``GET /v1/ws``: many chat streams over one WebSocket, each cancellable on its own (DESIGN.md section 6).

Theory of operation (the handshake, the read loop, the shielded writes and the drain are every WebSocket
route's, `proxy.ws_connection`):
1. A refused upgrade gets an HTTP 401 (503 while draining) with the OpenAI error body, and no socket.
2. One `WebSocketConnection` per socket parses each text frame with
   `compat.openai.ws_protocol.parse_client_frame`; a frame it cannot act on gets an ``error`` frame and the
   loop goes on. Each ``create`` becomes one task in the socket's nursery, inside its own cancel scope,
   bounded per socket by ``ws_max_requests_per_socket`` (over it: an ``error`` frame for that id); a
   ``cancel`` cancels that scope.
3. A request runs through the same pipeline as ``POST /v1/chat/completions`` (`proxy.pipeline.generate`:
   routing, v1/v2 dispatch, admission, the producer that frees the slot after the backend returned, the
   breaker, the stop deadline) and the same `ChunkEncoder` as SSE. It is tracked in the daemon's `Inflight`,
   so the graceful stop waits for it and the stop deadline aborts it with ``server_shutting_down``, exactly
   like an HTTP request.
   Every request ends with one terminal frame: ``chat.completion.done``, or ``error`` (including
   ``request_cancelled`` after a client ``cancel``), sent only once its slot is free.
4. A client that stops reading is disconnected by the listener's write timeout, so every request on the
   socket is cancelled and frees its slot. The client closing the socket cancels every request of the socket.
   When the daemon drains, new ``create`` frames get ``server_shutting_down`` and the socket is closed with
   1001 (going away) once its requests have ended.
"""

from __future__ import annotations

from functools import partial
from typing import Unpack

import trio
from quart import Response

from adapters.errors import TrinferError
from adapters.types import Done
from compat.errors import RequestCancelled, RequestValidationError, ShuttingDown, TooManyRequests
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
from .body_parsing import THREAD_THRESHOLD_BYTES, parse_off_loop
from .errors import ErrorRenderers
from .inflight import RequestInfo
from .log_values import loggable
from .logs import get_logger
from .services import Services
from .ws_connection import FrameSocket, SocketParts, serve_socket

log = get_logger("ws")

WS_PATH = "/v1/ws"


async def websocket_route(services: Services, errors: ErrorRenderers) -> Response | None:
    """The quart view of ``GET /v1/ws``: refuse the upgrade with a status, or accept and serve the socket."""
    max_requests = services.server.ws_max_requests_per_socket
    return await serve_socket(
        services, errors, WS_PATH, lambda parts: WebSocketConnection(max_requests=max_requests, **parts)
    )


# --- one socket -------------------------------------------------------------------------------------------


class WebSocketConnection(FrameSocket):
    """One accepted ``/v1/ws`` socket: runs each ``create`` in its own task, bounded by ``max_requests``.
    See the module docstring; the other arguments are `FrameSocket`'s.
    """

    PATH = WS_PATH
    ITEM = "request"
    LOG = log

    def __init__(self, *, max_requests: int, **parts: Unpack[SocketParts]) -> None:
        super().__init__(**parts)
        self._max_requests = max_requests
        #: Requests in flight (id -> the scope a cancel frame cancels), until their terminal frame is due.
        self._requests: dict[str, trio.CancelScope] = {}

    async def on_text(self, message: str) -> None:
        try:
            large = len(message) >= THREAD_THRESHOLD_BYTES
            frame = await parse_off_loop(
                len(message),
                partial(parse_client_frame, message, max_bytes=self._max_frame_bytes, interruptible=large),
            )
        except FrameError as exc:
            await self.send_text(error_frame(exc.frame_id, exc.error))
            return
        if isinstance(frame, CancelFrame):
            scope = self._requests.get(frame.id)
            if scope is not None:
                scope.cancel()
            return
        refusal = self._refusal(frame)
        if refusal is not None:
            await self.send_text(error_frame(frame.id, refusal))
            return
        scope = trio.CancelScope()
        self._requests[frame.id] = scope
        self.start_task(partial(self._run_request, frame, scope))

    def _refusal(self, frame: CreateFrame) -> TrinferError | None:
        if self.draining:
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

    # --- one request ----------------------------------------------------------------------------------

    async def _run_request(self, frame: CreateFrame, scope: trio.CancelScope) -> None:
        info = self.new_request(frame.chat.model)
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
                await self.send_text(terminal)
                sent = True
        finally:
            self._requests.pop(frame.id, None)
            duration = self.observe(info, answered=sent)
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
                        await self.send_text(text)
                    if done is not None:
                        info.status = 200
                        return done
            raise AssertionError("a generation ends with Done or raises")
        except Exception as exc:
            self.record_failure(exc, info)
            return error_frame(frame.id, exc, info.request_id)
        finally:
            if generation is not None:
                generation.cancel()
