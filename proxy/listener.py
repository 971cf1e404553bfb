"""One HTTP listener: hypercorn's trio protocol stack serving an ASGI app, started with ``nursery.start``.

Why not ``hypercorn.trio.serve`` as is: hypercorn writes to the socket inside a *shielded* cancel scope, so a
client that stops reading blocks that write - and with it the request, its admission slot, and even the
server's graceful shutdown - for as long as the client likes; no timeout around the ASGI ``send`` can
interrupt it. `serve_listener` runs the same pieces as ``hypercorn.trio.run.worker_serve`` (lifespan,
sockets, ``trio.serve_listeners``, graceful shutdown), but its connections bound every write by
``write_timeout_s``: a write still blocked after that closes the connection, which hypercorn reports to the
app as ``http.disconnect`` (or ``websocket.disconnect``), so the request is cancelled and its slot freed.
They also close a connection that cannot be reused even when the app's task is being cancelled (see
`BoundedWriteTCPServer._close`), so a request body that stopped arriving gets its 408 and then EOF.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

from .logs import get_logger

ASGIApp = Any  # an ASGI 3 application (hypercorn types it more narrowly than quart does)

log = get_logger("listener")

#: Idle keep-alive connections are closed after this long.
KEEP_ALIVE_S = 30.0


def websocket_message_limit(max_body_bytes: int) -> int:
    """hypercorn's ``websocket_max_message_size`` for a ``max_body_bytes``: twice it (16 MiB by default).

    The route answers a frame over ``max_body_bytes`` with a ``request_too_large`` error frame, so hypercorn's
    own limit (which closes the socket with 1009 before the route sees the frame) must sit above it, with
    headroom for those frames; only frames over this bound, which hypercorn would have to buffer whole, are
    closed with 1009.
    """
    return 2 * max_body_bytes


class BoundedWriteTCPServer(TCPServer):
    """hypercorn's per-connection server, with every socket write bounded by ``write_timeout_s``."""

    def __init__(self, write_timeout_s: float, *args: Any) -> None:
        super().__init__(*args)
        self._write_timeout_s = write_timeout_s

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            try:
                # Shielded as in hypercorn (a cancelled half-write would corrupt the stream), but bounded.
                with trio.CancelScope(shield=True), trio.move_on_after(self._write_timeout_s) as bounded:
                    await self.stream.send_all(event.data)
                if bounded.cancelled_caught:
                    log.warning(
                        "a client stopped reading for %g s (write_timeout_s): closing its connection",
                        self._write_timeout_s,
                    )
                    await trio.aclose_forcefully(self.stream)
                    raise trio.ClosedResourceError("write timed out")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())

    async def _close(self) -> None:
        """Close the socket, shielded: a close that is cancelled half-way leaves the connection open forever.

        hypercorn closes a connection it cannot reuse (a response sent before the request body was read, such
        as the 408 for a body that stopped arriving) from inside the app's own task, right after telling the
        app ``http.disconnect``; quart cancels that task on the disconnect, which cancelled the close at its
        first checkpoint. Both steps (``shutdown`` and ``close`` on a plain socket) return at once.
        """
        with trio.CancelScope(shield=True):
            await super()._close()


def hypercorn_config(
    host: str, port: int, *, graceful_timeout_s: float, max_body_bytes: int | None = None
) -> HypercornConfig:
    config = HypercornConfig()
    if max_body_bytes is not None:
        config.websocket_max_message_size = websocket_message_limit(max_body_bytes)
    config.bind = [f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # RequestMiddleware logs one line per request, with the request id
    config.errorlog = get_logger("hypercorn")
    config.graceful_timeout = graceful_timeout_s
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.include_server_header = False
    return config


async def serve_listener(
    app: ASGIApp,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    graceful_timeout_s: float,
    write_timeout_s: float = math.inf,
    max_body_bytes: int | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown`` is set; ``task_status.started(url)`` once bound.

    After ``shutdown``: stop accepting, close idle connections, give busy ones ``graceful_timeout_s``.
    ``max_body_bytes`` sets the WebSocket message limit (`websocket_message_limit`); None keeps hypercorn's.
    """
    config = hypercorn_config(host, port, graceful_timeout_s=graceful_timeout_s, max_body_bytes=max_body_bytes)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
            first = sockets.insecure_sockets[0]
            task_status.started(f"http://{repr_socket_addr(first.family, first.getsockname())}")
            connection = partial(
                BoundedWriteTCPServer, write_timeout_s, wrapped, config, context, ConnectionState(lifespan_state)
            )
            try:
                async with trio.open_nursery() as accept_nursery:
                    accept_nursery.start_soon(
                        partial(trio.serve_listeners, connection, listeners, handler_nursery=server_nursery)
                    )
                    await shutdown.wait()
                    accept_nursery.cancel_scope.cancel()
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
