"""The daemon's lifecycle: one task tree, started in order, drained with a deadline (DESIGN.md section 3).

Theory of operation (`Daemon.run`):
1. The config was validated and every backend built (``from_options``, no I/O) in ``__init__``.
2. The admin listener binds first; ``run`` reports ``started()`` to its caller at that point.
3. Every backend boots as a task started with ``nursery.start``, all at once, bounded together by
   ``ready_timeout_s``. A boot failure or the deadline ends ``run`` with `StartupError` - the inference
   listener is never bound. Backends that did boot are stopped first.
4. Only then does the inference listener bind; the state turns ``ready`` and `/ready` answers 200.
5. `request_stop` (SIGINT/SIGTERM in the CLI) turns the state to ``draining``: `/ready` and every new request
   get 503. In-flight requests get ``stop_timeout_s``; after that their queue waits and generations are
   aborted (a request gets 503, a stream gets one ``server_shutting_down`` error event) and they get
   ``ABORT_GRACE_S`` more to send that. Then the inference listener closes, every backend's ``stop`` is
   awaited (shielded, bounded by ``stop_timeout_s``), the admin listener closes and ``run`` returns.
`force_stop` (a second signal) cancels everything at once, including those shielded stops.

The Daemon only builds and runs things: the backends, the `Services` value the views are given (they never
see the Daemon), the two apps, the listeners. Its state lives in `proxy.lifecycle.Lifecycle`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from adapters.backend import Backend, BackendConfigError
from adapters.registry import backend_class

from .admission import Admission
from .apps import build_admin_app, build_inference_app
from .auth import ApiKeys
from .breaker import CircuitBreaker
from .config import BackendConfig, Config, ConfigError
from .inflight import Inflight
from .lifecycle import DaemonState, Lifecycle
from .listener import serve_listener
from .logs import get_logger
from .metrics import Metrics
from .model_manager import ManagedModel, ManagedSettings, ModelPool
from .routing import BackendHandle, Router
from .services import Services

log = get_logger("daemon")

#: After the stop deadline, how long aborted requests get to send their error and end.
ABORT_GRACE_S = 2.0


class StartupError(RuntimeError):
    """The daemon could not start (a backend failed to boot, boot timed out, a port could not be bound).

    Its message is one line; the CLI prints it and exits with status 1.
    """


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _bind_failure(exc: BaseException) -> OSError | None:
    """The `OSError` that stopped a listener from binding, also when it arrives inside exception groups
    (hypercorn's socket setup runs inside the listener's nurseries), or None when ``exc`` is something else.
    """
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(OSError)
        if matched is not None and rest is None:
            return _bind_failure(matched.exceptions[0])
    return None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class Daemon:
    """One trinfer server. Build it from a validated `Config`, then ``await run()`` in a nursery."""

    def __init__(self, config: Config) -> None:
        self.config = config
        server = config.server
        handles = []
        #: The models loaded on demand and unloaded when idle, under ``max_loaded_models``.
        self.models = ModelPool(server.max_loaded_models)
        for index, table in enumerate(config.backends):
            try:
                backend = self._build_backend(table)
            except BackendConfigError as exc:
                raise ConfigError(f"backends[{index}] ({table.name}): {' '.join(str(exc).split())}") from None
            admission = Admission(active=table.active, queue=table.queue, queue_timeout_s=server.queue_timeout_s)
            handles.append(BackendHandle(table, backend, admission, CircuitBreaker()))
        self.lifecycle = Lifecycle()
        #: What the views are given (they never see the Daemon).
        router = Router(handles)
        self.services = Services(
            router=router,
            inflight=Inflight(),
            server=server,
            api_keys=ApiKeys(config.api_keys),
            lifecycle=self.lifecycle,
            metrics=Metrics(router, enabled=server.metrics),
            started_at=int(time.time()),
        )
        self.models.events = self.services.metrics
        self.router = self.services.router
        self.inflight = self.services.inflight
        self.admin_url: str | None = None
        self.inference_url: str | None = None
        self._backends_stop = trio.Event()
        self._admin_shutdown = trio.Event()
        self._inference_shutdown = trio.Event()
        self._cleanup_scopes: set[trio.CancelScope] = set()
        self._forced = False
        self._root_scope: trio.CancelScope | None = None
        self.inference_app = build_inference_app(self.services)
        self.admin_app = build_admin_app(self.services, self.status)

    def _build_backend(self, table: BackendConfig) -> Backend:
        """The table's backend; wrapped in a `ManagedModel` when it loads on demand or may be unloaded."""
        cls = backend_class(table.kind)
        server = self.config.server
        if not table.is_managed(server.max_loaded_models):
            return cls.from_options(table.options)
        settings = ManagedSettings(
            name=table.name,
            load=table.load,
            keep_alive_s=table.keep_alive_s,
            wait_timeout_s=server.queue_timeout_s,
            unload_timeout_s=server.stop_timeout_s,
        )
        return ManagedModel(settings, lambda: cls.from_options(table.options), self.models)

    @property
    def state(self) -> DaemonState:
        return self.lifecycle.state

    async def wait_ready(self) -> None:
        """Return once the inference listener is bound and the daemon is ready (or a stop came first)."""
        await self.lifecycle.wait_ready()

    def status(self) -> dict[str, Any]:
        """The body of /admin/status."""
        return {
            "state": self.state.value,
            "listeners": {"admin": self.admin_url, "inference": self.inference_url},
            "inflight": len(self.inflight),
            "backends": [h.status() for h in self.router.handles],
            "models": {
                "max_loaded_models": self.config.server.max_loaded_models,
                "loaded": self.models.loaded(),
                "folder": self.config.models_folder.status() if self.config.models_folder is not None else None,
            },
        }

    # --- stopping ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin the graceful stop (idempotent): drain, stop the backends, close the listeners."""
        if self.lifecycle.request_stop():
            log.info("stop requested: draining %d request(s)", len(self.inflight))

    def force_stop(self) -> None:
        """Cancel everything at once, without waiting for requests or backends."""
        self._forced = True
        for scope in list(self._cleanup_scopes):
            scope.shield = False
            scope.cancel()
        if self._root_scope is not None:
            self._root_scope.cancel()

    @contextmanager
    def _cleanup_scope(self, timeout: float) -> Iterator[trio.CancelScope]:
        """A shielded, bounded scope for final cleanup, which only `force_stop` can cut short."""
        scope = trio.CancelScope(shield=not self._forced, deadline=trio.current_time() + timeout)
        if self._forced:
            scope.cancel()
        self._cleanup_scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._cleanup_scopes.discard(scope)

    # --- the lifecycle -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[Daemon] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the daemon until it has stopped; ``started(self)`` once the admin listener is bound.

        Raises `StartupError` if a listener cannot be bound or the backends do not all become ready.
        """
        server = self.config.server
        failure: str | None = None
        self._log_models_folder()
        try:
            with trio.CancelScope() as root:
                self._root_scope = root
                async with trio.open_nursery() as nursery:
                    self.admin_url = await self._bind(
                        nursery, self.admin_app, server.admin_port, self._admin_shutdown
                    )
                    log.info("admin listening on %s", self.admin_url)
                    task_status.started(self)
                    try:
                        failure = await self._serve_with_backends()
                    finally:
                        self.lifecycle.stopped()
                        self._admin_shutdown.set()
        except BaseExceptionGroup as group:
            startup, _ = group.split(StartupError)
            if startup is None:
                raise
            raise _first_leaf(startup) from None
        if failure is not None:
            raise StartupError(failure)
        log.info("stopped")

    def _log_models_folder(self) -> None:
        folder = self.config.models_folder
        if folder is None:
            return
        log.info("models folder %s: serving %d model(s)", folder.path, len(folder.tables))
        for note in folder.shadowed:
            log.info("models folder: %s", note)
        for problem in folder.problems:
            log.warning("models folder: %s is not served: %s", problem.file, problem.error)

    async def _bind(self, nursery: trio.Nursery, app: Any, port: int, shutdown: trio.Event) -> str:
        host = self.config.server.host
        try:
            url: str = await nursery.start(
                lambda task_status: serve_listener(
                    app,
                    host,
                    port,
                    shutdown,
                    graceful_timeout_s=ABORT_GRACE_S,
                    write_timeout_s=self.config.server.write_timeout_s,
                    max_body_bytes=self.config.server.max_body_bytes,
                    task_status=task_status,
                )
            )
        except (OSError, BaseExceptionGroup) as exc:
            failure = _bind_failure(exc)
            if failure is None:
                raise
            raise StartupError(f"cannot listen on {host}:{port}: {failure.strerror or failure}") from None
        return url

    async def _serve_with_backends(self) -> str | None:
        """Boot, serve, drain; returns why startup failed, or None."""
        self.lifecycle.loading()
        failure: str | None = None
        async with trio.open_nursery() as backends:
            try:
                failure = await self._boot_all(backends)
                if failure is None and not self.lifecycle.stop_requested():
                    await self._serve_inference()
            finally:
                self._backends_stop.set()  # every booted backend now runs its (shielded) stop
        if failure is not None:
            log.error("startup failed: %s", failure)
        return failure

    async def _boot_all(self, backends: trio.Nursery) -> str | None:
        handles = self.router.handles
        booted: set[str] = set()
        failures: list[str] = []
        timeout = self.config.server.ready_timeout_s

        async def boot_one(handle: BackendHandle, abort: trio.CancelScope) -> None:
            try:
                await backends.start(self._run_backend, handle)
            except Exception as exc:
                failures.append(f"backend {handle.name!r} failed to boot: {_one_line(exc)}")
                abort.cancel()  # one failure is enough: do not wait for the others
            else:
                booted.add(handle.name)

        async def abort_on_stop(abort: trio.CancelScope) -> None:
            await self.lifecycle.wait_draining()
            abort.cancel()

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as boots:
                boots.start_soon(abort_on_stop, boots.cancel_scope)
                async with trio.open_nursery() as each:
                    for handle in handles:
                        each.start_soon(boot_one, handle, boots.cancel_scope)
                boots.cancel_scope.cancel()
        if failures:
            return failures[0]
        if len(booted) == len(handles) or self.lifecycle.stop_requested():
            return None
        waiting = ", ".join(repr(h.name) for h in handles if h.name not in booted)
        return f"backend(s) {waiting} not ready after ready_timeout_s = {timeout:g} s"

    async def _run_backend(self, handle: BackendHandle, *, task_status: trio.TaskStatus[None]) -> None:
        """Own one backend: boot it, report ready, and stop it when the daemon stops (or is cancelled)."""
        backend = handle.backend
        try:
            log.info("backend %r (%s) booting", handle.name, handle.config.kind)
            await backend.boot()
            log.info("backend %r ready, serving %s", handle.name, ", ".join(handle.config.models))
            task_status.started()
            async with trio.open_nursery() as upkeep:
                upkeep.start_soon(self._maintain_backend, handle)
                await self._backends_stop.wait()
                upkeep.cancel_scope.cancel()  # the upkeep ends before stop() is awaited below
        finally:
            timeout = self.config.server.stop_timeout_s
            with self._cleanup_scope(timeout) as scope:
                try:
                    await backend.stop(timeout)
                except Exception as exc:
                    log.warning("backend %r failed to stop cleanly: %s", handle.name, _one_line(exc))
            if scope.cancelled_caught:
                log.warning("backend %r did not stop within %g s", handle.name, timeout)

    async def _maintain_backend(self, handle: BackendHandle) -> None:
        """Run the backend's background upkeep (`Backend.maintain`); a failure there is logged, not fatal."""
        try:
            await handle.backend.maintain()
        except Exception:
            log.error("backend %r: its background upkeep failed and has stopped", handle.name, exc_info=True)

    async def _serve_inference(self) -> None:
        server = self.config.server
        async with trio.open_nursery() as nursery:
            self.inference_url = await self._bind(
                nursery, self.inference_app, server.port, self._inference_shutdown
            )
            self.lifecycle.serving()
            log.info("ready: inference listening on %s", self.inference_url)
            try:
                await self.lifecycle.wait_draining()
                await self._drain()
            finally:
                self._inference_shutdown.set()

    async def _drain(self) -> None:
        timeout = self.config.server.stop_timeout_s
        with trio.move_on_after(timeout):
            await self.inflight.wait_empty()
        if len(self.inflight):
            log.warning("stop deadline (%g s) passed: aborting %d request(s)", timeout, len(self.inflight))
            self.inflight.abort_all()
            with trio.move_on_after(ABORT_GRACE_S):
                await self.inflight.wait_empty()
