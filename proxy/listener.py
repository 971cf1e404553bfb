"""One HTTP listener: hypercorn's trio protocol stack serving an ASGI app, started with ``nursery.start``.

Why not ``hypercorn.trio.serve`` as is: hypercorn writes to the socket inside a *shielded* cancel scope, so a
client that stops reading blocks that write - and with it the request, its admission slot, and even the
server's graceful shutdown - for as long as the client likes; no timeout around the ASGI ``send`` can
interrupt it. And it runs each connection in the server's own nursery, so an exception inside one connection
(its HTTP/2 code raised ``KeyError`` for a body that arrived after the response) ended every listener.
`serve_listener` runs the same pieces as ``hypercorn.trio.run.worker_serve`` (lifespan, sockets,
``trio.serve_listeners``, graceful shutdown), but:

- each connection speaks HTTP/1.1 only (`proxy.http11`), runs in its own `Connection`, and any exception
  from inside it ends that connection alone, logged once with the connection's id;
- every socket write is bounded by ``write_timeout_s``: a write still blocked after that closes the socket,
  which hypercorn reports to the app as ``http.disconnect`` (or ``websocket.disconnect``), so the request is
  cancelled and its slot freed; if the app cannot take that message within `CLOSE_GRACE_S` (a WebSocket
  handler blocked behind the very write that stalled never drains hypercorn's queue), the whole connection is
  cut: all of its tasks are cancelled;
- when the listener stops, no write may last past the graceful deadline, so the stop is bounded whatever the
  clients do;
- a connection that cannot be reused is closed even when the app's task is being cancelled (see
  `Connection._close`), so a request body that stopped arriving gets its 408 and then EOF;
- per request it does less than hypercorn: the keep-alive timer is one task per connection whose deadline
  moves (`Connection._idle_changed`), not a task started per request, and it ends with the connection; a
  response's head is written with its first body piece (`proxy.http11.Http11Protocol.stream_send`); the
  ``date`` header is made once a second (`ListenerConfig`).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr, repr_socket_addr, wrap_app

from .http11 import Http11Protocol
from .logs import get_logger

ASGIApp = Any  # an ASGI 3 application (hypercorn types it more narrowly than quart does)

log = get_logger("listener")

#: Idle keep-alive connections are closed after this long.
KEEP_ALIVE_S = 30.0
#: How long a closing connection may take to tell its app, or to close its socket, before it is cut.
CLOSE_GRACE_S = 1.0


def websocket_message_limit(max_body_bytes: int) -> int:
    """hypercorn's ``websocket_max_message_size`` for a ``max_body_bytes``: twice it (16 MiB by default).

    The route answers a frame over ``max_body_bytes`` with a ``request_too_large`` error frame, so hypercorn's
    own limit (which closes the socket with 1009 before the route sees the frame) must sit above it, with
    headroom for those frames; only frames over this bound, which hypercorn would have to buffer whole, are
    closed with 1009.
    """
    return 2 * max_body_bytes


class Connection(TCPServer):
    """One client connection: hypercorn's per-connection server, HTTP/1.1 only (`proxy.http11`), every socket
    write bounded by ``write_timeout_s``, and a way to end the whole connection at once.

    Cutting a connection (`cut`) cancels everything running for it - the reader, the idle timer, the app's
    task - and closes the socket. It happens when a write stalls (or fails) and the app cannot be told in
    time: hypercorn tells it with a ``disconnect`` message on a bounded queue, and a WebSocket app that is
    itself stuck behind the stalled write never drains that queue.
    """

    def __init__(self, write_timeout_s: float, connection_id: str, *args: Any) -> None:
        super().__init__(*args)
        self._write_timeout_s = write_timeout_s
        self.connection_id = connection_id
        self._scope = trio.CancelScope()
        #: No write may last past this (set when the listener stops: see `stop_writes_by`).
        self._stop_deadline = math.inf
        self._writing: trio.CancelScope | None = None
        self._lost = False
        #: The keep-alive timer (`_idle_watch`): its deadline is the idle timeout while idle, none while busy.
        self._idle_scope = trio.CancelScope()
        self._idle = True
        self._terminating = False
        self._reading = True

    async def run(self) -> None:
        """hypercorn's ``TCPServer.run`` for a plain TCP stream, with `Http11Protocol` and the cut scope."""
        with self._scope:
            try:
                socket = self.stream.socket
                client = parse_socket_addr(socket.family, socket.getpeername())
                server = parse_socket_addr(socket.family, socket.getsockname())
                async with TaskGroup() as task_group:
                    self._task_group = task_group
                    self.protocol = ProtocolWrapper(
                        self.app, self.config, self.context, task_group, ConnectionState(self.state),
                        False, client, server, self.protocol_send,
                    )  # fmt: skip
                    # Over plain TCP hypercorn's wrapper picks h11; it would switch to h2 from there.
                    self.protocol.protocol = Http11Protocol(
                        self.app, self.config, self.context, task_group, ConnectionState(self.state),
                        False, client, server, self.protocol_send,
                    )  # fmt: skip
                    await self.protocol.initiate()
                    self._idle_changed(idle=True)
                    task_group.spawn(self._idle_watch)
                    try:
                        await self._read_data()
                    finally:
                        self._reading = False
                        self._idle_scope.cancel()  # the client is gone: the timer has nothing left to close
            except OSError:
                pass  # the client went away (even before getpeername)
            finally:
                await self._close()

    def cut(self) -> None:
        """End the connection now: cancel all of its tasks; the socket is closed on the way out."""
        self._scope.cancel()

    def stop_writes_by(self, deadline: float) -> None:
        """Let no write (the one under way included) last past ``deadline``: the listener is stopping."""
        self._stop_deadline = deadline
        if self._writing is not None:
            self._writing.deadline = min(self._writing.deadline, deadline)

    async def protocol_send(self, event: Event) -> None:
        if type(event) is not RawData:  # (`type` first: hypercorn's events are ABCs, their isinstance is slow)
            if isinstance(event, Updated):
                self._idle_changed(event.idle)
                return
            if not isinstance(event, RawData):
                await super().protocol_send(event)
                return
        await self._lock_for_write()
        try:
            data = event.data
            written = self._write_now(data)
            if written == len(data):
                return
            failed = True
            if written is not None:
                deadline = min(trio.current_time() + self._write_timeout_s, self._stop_deadline)
                # Shielded as in hypercorn (a cancelled half-write would corrupt the stream), but bounded.
                with trio.CancelScope(shield=True, deadline=deadline) as writing:
                    self._writing = writing
                    try:
                        await self.stream.send_all(memoryview(data)[written:])
                        failed = False
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    finally:
                        self._writing = None
                if not failed:
                    return
                if writing.cancelled_caught and not self._lost:
                    log.warning(
                        "connection %s: a write was blocked past write_timeout_s (%g s) or the stop deadline: "
                        "closing it",
                        self.connection_id,
                        self._write_timeout_s,
                    )
        finally:
            self.send_lock.release()
        await self._connection_lost()

    def _write_now(self, data: bytes) -> int | None:
        """Write what the socket takes at once, without waiting: the bytes written (0 when its send buffer is
        full), or None when the socket is unusable (closed, reset).

        A streamed token is a small write the kernel takes whole, so it costs no trip through trio's scheduler
        and no cancel scope; only a write the socket does not take whole waits, bounded, in `protocol_send`.
        (``os.write`` on the socket's descriptor: trio's socket has no send that never yields; the socket is
        non-blocking, and Python ignores SIGPIPE, so a gone peer is an ``OSError``.)
        """
        try:
            return os.write(self.stream.socket.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError:
            return None

    async def _lock_for_write(self) -> None:
        """Take the connection's write lock (one write at a time, in order), as ``async with`` would, but without
        a pass through the scheduler when nobody holds it: a streamed token is one write, and the write that
        follows yields anyway. A cancelled caller still gets `trio.Cancelled` here, before anything is written.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_lock.acquire_nowait()
        except trio.WouldBlock:
            await self.send_lock.acquire()

    def _idle_changed(self, idle: bool) -> None:
        """Arm the keep-alive timer when the connection becomes idle, disarm it when a request begins.

        hypercorn restarts a timer *task* each time (``nursery.start``: a new task and a wait for it to start,
        per request), from inside the app's own task, which is being cancelled by then: its start was cancelled
        with it, so a connection that had served a request was never closed for being idle. Here one task per
        connection (`_idle_watch`) waits, and this only moves its deadline: no checkpoint, nothing to cancel.
        """
        self._idle = idle
        self._idle_scope.deadline = trio.current_time() + self.config.keep_alive_timeout if idle else math.inf
        if idle and self._terminating:
            self._idle_scope.cancel()

    async def _idle_watch(self) -> None:
        """Close the connection once it has been idle for the keep-alive timeout, or once it is idle after the
        server began to stop (at once if it is idle then), as hypercorn's timer does."""
        with self._idle_scope:
            await self.context.terminated.wait()
            self._terminating = True
            if not self._idle:
                await trio.sleep_forever()  # until the request in progress ends (`_idle_changed`)
        if self._reading:
            with trio.CancelScope(shield=True):
                await self._initiate_server_close()

    async def _connection_lost(self) -> None:
        """The socket is unusable: close it and tell the app within `CLOSE_GRACE_S`, or else cut the connection."""
        if self._lost:
            return
        self._lost = True
        await trio.aclose_forcefully(self.stream)
        told = False
        try:
            with trio.move_on_after(CLOSE_GRACE_S):
                await self.protocol.handle(Closed())
                told = True
        finally:
            if not told:
                self.cut()

    async def _close(self) -> None:
        """Close the socket, shielded: a close that is cancelled half-way leaves the connection open forever.

        hypercorn closes a connection it cannot reuse (a response sent before the request body was read, such
        as the 408 for a body that stopped arriving) from inside the app's own task, right after telling the
        app ``http.disconnect``; quart cancels that task on the disconnect, which cancelled the close at its
        first checkpoint. Both steps (``shutdown`` and ``close`` on a plain socket) return at once; the
        deadline only guards that, and the socket is closed whatever happened.
        """
        with trio.move_on_after(CLOSE_GRACE_S, shield=True):
            await super()._close()
        self.stream.socket.close()

    async def _read_data(self) -> None:
        """hypercorn's read loop, without its per-read ``fail_after`` (no ``read_timeout`` is configured: an idle
        connection is ended by the keep-alive timer, a stalled body by the body timeout)."""
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if not data:
                break
        await self.protocol.handle(Closed())

    async def _initiate_server_close(self) -> None:
        """The keep-alive timeout's close (shielded, as hypercorn's): bounded, and the socket closed regardless."""
        with trio.move_on_after(CLOSE_GRACE_S):
            await self.protocol.handle(Closed())
        self.stream.socket.close()


class ListenerConfig(HypercornConfig):
    """hypercorn's config, whose response headers (only ``date`` here: no server or alt-svc header) are made
    once per second instead of once per response (formatting the date was a share of every response)."""

    _made: tuple[int, str] = (-1, "")
    _headers: list[tuple[bytes, bytes]] = []  # (replaced whole, never mutated)

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        key = (int(time.time()), protocol)
        if key != self._made:
            self._headers = super().response_headers(protocol)
            self._made = key
        return self._headers


def hypercorn_config(
    host: str, port: int, *, graceful_timeout_s: float, max_body_bytes: int | None = None
) -> HypercornConfig:
    config = ListenerConfig()
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
            port_tag = f"c{first.getsockname()[1]}"
            connections: set[Connection] = set()
            ids = itertools.count(1)

            async def serve_connection(stream: trio.SocketStream) -> None:
                connection = Connection(
                    write_timeout_s, f"{port_tag}-{next(ids)}", wrapped, config, context,
                    ConnectionState(lifespan_state), stream,
                )  # fmt: skip
                connections.add(connection)
                try:
                    await connection.run()
                except* Exception as failure:
                    # Whatever went wrong (hypercorn, h11, wsproto, the app) ends this connection only.
                    log.error("connection %s failed; closed it", connection.connection_id, exc_info=failure)
                finally:
                    connections.discard(connection)

            try:
                async with trio.open_nursery() as accept_nursery:
                    accept_nursery.start_soon(
                        partial(trio.serve_listeners, serve_connection, listeners, handler_nursery=server_nursery)
                    )
                    await shutdown.wait()
                    accept_nursery.cancel_scope.cancel()
            finally:
                await context.terminated.set()
                deadline = trio.current_time() + config.graceful_timeout
                server_nursery.cancel_scope.deadline = deadline
                for connection in connections:
                    connection.stop_writes_by(deadline)
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
