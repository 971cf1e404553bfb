"""``GET /v1/responses`` (WebSocket): the Responses API over one persistent socket, as the openai SDK's
``client.responses.connect()`` speaks it (DESIGN.md section 8).

Theory of operation (the handshake, the read loop, the shielded writes and the drain are every WebSocket
route's, `proxy.ws_connection`):
1. A refused upgrade gets an HTTP status with the OpenAI error body.
2. One `ResponsesSocket` per socket parses each text frame (`compat.openai.responses_ws.parse_client_event`);
   a frame it cannot act on gets an ``error`` event and the loop goes on.
3. One response at a time: a ``response.create`` starts a task in the socket's nursery; another one while it
   runs gets an ``error`` event (``response_in_progress``) and changes nothing. Responses on one socket run in
   sequence.
4. A response runs through the same pipeline as ``POST /v1/responses`` (`proxy.pipeline.generate`: routing,
   dispatch, admission, the owned producer, the breaker) and the same `ResponseEncoder`; it is tracked
   in the daemon's `Inflight`, so the graceful stop waits for it and its deadline aborts it. A failure before
   the first event is an ``error`` event; after it, ``response.failed``. The batch holding `Done` arrives
   only once the slot is free, so the last event of a response is too.
5. The client closing the socket cancels the running response. While the daemon drains, ``response.create``
   gets ``server_shutting_down`` and the socket closes with 1001 once idle.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Unpack

import trio
from quart import Response

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
from .inflight import RequestInfo
from .logs import get_logger
from .services import Services
from .ws_connection import FrameSocket, SocketParts, serve_socket

log = get_logger("responses_ws")

PATH = "/v1/responses"


def busy() -> ResponseInProgress:
    return ResponseInProgress(
        "A response is already running on this socket; wait for its last event (response.completed, "
        "response.incomplete or response.failed) or open another socket"
    )


async def responses_socket_route(services: Services, errors: ErrorRenderers) -> Response | None:
    """The quart view: refuse the upgrade with a status, or accept it and serve the socket."""
    return await serve_socket(services, errors, PATH, lambda parts: ResponsesSocket(**parts))


class ResponsesSocket(FrameSocket):
    """One accepted ``/v1/responses`` socket, one response at a time (see the module docstring); built from
    `proxy.ws_connection.SocketParts`."""

    PATH = PATH
    ITEM = "response"
    LOG = log

    def __init__(self, **parts: Unpack[SocketParts]) -> None:
        super().__init__(**parts)
        #: True from a response's start until its last event is due (then the next one may start).
        self._running = False

    def _response_over(self) -> None:
        self._running = False

    def on_idle(self) -> None:
        self._running = False  # already so, unless the response ended without its last event

    async def _send_events(self, events: list[dict[str, Any]], *, last_of_response: bool = False) -> None:
        """Write ``events``; ``last_of_response``: the response is over once the last one's write starts, so
        the next ``response.create`` may start another, whose writes queue behind this one."""
        for index, event in enumerate(events, 1):
            last = last_of_response and index == len(events)
            await self.send_text(event_frame(event), on_turn=self._response_over if last else None)

    async def on_text(self, message: str) -> None:
        try:
            parsed = parse_client_event(message, max_bytes=self._max_frame_bytes)
        except ClientEventError as exc:
            await self._send_events([error_event(exc.error)])
            return
        if self.draining:
            await self._send_events([error_event(ShuttingDown("The server is shutting down"))])
        elif self._running:
            await self._send_events([error_event(busy())])
        else:
            self._running = True
            self.start_task(partial(self._run_response, parsed))

    async def _run_response(self, parsed: ResponsesRequest) -> None:
        info = self.new_request(parsed.model)
        try:
            with self._inflight.track(info):
                async with trio.open_nursery() as nursery:
                    info.nursery = nursery
                    await self._stream(parsed, info)
        finally:
            duration = self.observe(info, answered=True)
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
            self.record_failure(exc, info)
            final = encoder.fail(exc, info.request_id) if encoder.started else [error_event(exc, info.request_id)]
            await self._send_events(final, last_of_response=True)
        finally:
            if generation is not None:
                generation.cancel()
