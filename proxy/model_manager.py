"""Models loaded when a request needs them, unloaded when idle, and a bound on how many are loaded at once.

Theory of operation. A `ManagedModel` is a `Backend` wrapping the real one (a llamacpp model; the mock, for
tests). The router, admission and pipeline see only the wrapper, and the daemon boots, maintains and stops it
like any other backend, so a request for it goes through the same route -> admit -> producer pipeline and waits
in the same admission queue. What the wrapper adds:

- a state: ``unloaded -> loading -> ready -> unloading -> unloaded`` (``stopped`` at the end). Every load builds
  a fresh inner backend (``factory()``, i.e. ``from_options``) and boots it; every unload stops it and drops it,
  so nothing of one load survives into the next and its memory goes back.
- a request (``generate``, ``embed``, ``count_tokens``) that finds the model not ready asks for a load and
  waits for it, holding its admission slot, bounded by ``wait_timeout_s`` (``queue_timeout_s``: then
  `QueueTimeout`, 503 ``queue_timeout``). A failed load fails each of its waiters with 503
  ``backend_unavailable`` naming why (also shown in status); the next request tries again, and the circuit
  breaker counts the failures. A waiter that leaves (the client disconnected) just stops waiting.
- loads run in the model's `maintain` task, which the daemon owns, never in a request's task: a client leaving
  cannot cut short a load that others wait for. A load that still waits for room under the bound when its last
  waiter has left is dropped; once llama.cpp reads the file it goes on to the end (a load in a worker thread
  cannot be interrupted), and the model is then ready for the next request, and unloaded by ``keep_alive_s``
  or the bound like any idle model.
- ``busy``: requests using the loaded model right now. A busy model is never unloaded.
- ``keep_alive_s > 0``: `maintain` unloads the model that long after its last request ended.

`ModelPool` (one per daemon) holds the bound ``max_loaded_models``. A load takes the pool's lock, then, while
the other models that hold memory (``loading``, ``ready`` or ``unloading``) are at the bound, unloads the least
recently used idle one, or waits until one becomes idle (or the load's waiters have all left). Locks are taken
in one order, pool then model, and each model's load and unload hold its own lock, so they never overlap.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, Self

import trio

from adapters.backend import Backend, BackendConfigError
from adapters.errors import Unavailable
from adapters.types import BackendCapabilities, EmbedResolved, EmbedResult, Event, Resolved, ResolvedV2
from compat.errors import QueueTimeout

from .logs import get_logger

log = get_logger("models")


class ModelState(enum.StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    STOPPED = "stopped"


#: The states in which a model holds (or is about to hold, or still holds) its memory: what the bound counts.
_HOLDING = frozenset({ModelState.LOADING, ModelState.READY, ModelState.UNLOADING})


class UnloadReason(enum.StrEnum):
    KEEP_ALIVE = "keep_alive"
    EVICTED = "evicted"


class ModelEvents(Protocol):
    """Where loads and unloads are reported (`proxy.metrics.Metrics`)."""

    def observe_model_load(self, backend: str, seconds: float, *, ok: bool) -> None: ...

    def observe_model_unload(self, backend: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ManagedSettings:
    """How one model is managed: its backend name, when it loads, how long it stays loaded when idle."""

    name: str
    #: ``boot``: loaded before the daemon is ready (F-13); ``on_demand``: by the first request that needs it.
    load: str
    #: Unload this long after the last request ended; 0: never (only the bound unloads it).
    keep_alive_s: float
    #: How long a request waits for the model to load (or for room under the bound).
    wait_timeout_s: float
    #: The deadline of one unload (and of releasing a failed load).
    unload_timeout_s: float


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


@contextmanager
def _shielded(timeout: float) -> Iterator[None]:
    """Shielded from the caller's cancellation (an unload must finish), but never longer than ``timeout``."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
        yield


class _Attempt:
    """One load that requests wait for: set ``done`` when it ended; ``error`` when it failed."""

    __slots__ = ("done", "error", "waiters")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.waiters = 0


class ModelPool:
    """The models of one daemon that share ``max_loaded_models`` (0: no bound). See the module docstring."""

    def __init__(self, max_loaded: int, events: ModelEvents | None = None) -> None:
        self.max_loaded = max_loaded
        self.events = events
        self._members: list[ManagedModel] = []
        self._lock = trio.Lock()
        self._changed = trio.Event()

    @property
    def members(self) -> tuple[ManagedModel, ...]:
        return tuple(self._members)

    def join(self, model: ManagedModel) -> None:
        self._members.append(model)

    def loaded(self) -> int:
        """How many models hold memory now (loading, ready or unloading)."""
        return sum(1 for m in self._members if m.state in _HOLDING)

    def notify(self) -> None:
        """Something changed (a state, a model became idle, a waiter left): wake whoever waits for room."""
        self._changed.set()
        self._changed = trio.Event()

    @asynccontextmanager
    async def admitting(self) -> AsyncIterator[None]:
        """Held while one model makes room and loads (only under a bound: unbounded loads may overlap)."""
        if not self.max_loaded:
            yield
            return
        async with self._lock:
            yield

    async def make_room(self, model: ManagedModel, attempt: _Attempt | None) -> bool:
        """Unload idle models, least recently used first, until ``model`` fits under the bound; wait while
        none is idle. False when ``attempt``'s waiters have all left meanwhile (the load is then dropped)."""
        while self.max_loaded and self._held_by_others(model) >= self.max_loaded:
            idle = [m for m in self._members if m is not model and m.idle()]
            if idle:
                victim = min(idle, key=lambda m: m.last_used)
                log.info("unloading model %r (least recently used) to load %r", victim.name_, model.name_)
                await victim.unload(UnloadReason.EVICTED)
                continue
            if attempt is not None and attempt.waiters == 0:
                return False
            await self._changed.wait()
        return True

    def _held_by_others(self, model: ManagedModel) -> int:
        return sum(1 for m in self._members if m is not model and m.state in _HOLDING)


class ManagedModel(Backend):
    """A backend loaded on demand and unloaded when idle; see the module docstring."""

    name = "managed"

    def __init__(self, settings: ManagedSettings, factory: Callable[[], Backend], pool: ModelPool) -> None:
        self.settings = settings
        self._factory = factory
        #: Never booted: what the model can do and its configured details, while it is not loaded.
        self._spec = factory()
        self._pool = pool
        pool.join(self)
        self._inner: Backend | None = None
        self._loading: Backend | None = None
        self._state = ModelState.UNLOADED
        self._attempt: _Attempt | None = None
        #: The load that just finished: its waiters have yet to start using the model, which is not idle until.
        self._held_for: _Attempt | None = None
        self._wanted = trio.Event()
        self._activity = trio.Event()
        self._transition = trio.Lock()
        #: Requests using the loaded model right now.
        self.busy = 0
        #: trio time of the last request's end (or of the load): the LRU order and the keep-alive deadline.
        self.last_used = -math.inf
        self._last_used_wall: float | None = None
        self._loads = 0
        self._unloads = 0
        self._load_failures = 0
        self._last_load_s: float | None = None
        self._load_error: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        raise BackendConfigError("a managed model is built by the daemon around a configured backend")

    @property
    def name_(self) -> str:
        """The configured backend name (``name`` is the implementation's id, as for every backend)."""
        return self.settings.name

    @property
    def state(self) -> ModelState:
        return self._state

    def idle(self) -> bool:
        """Loaded and used by no request (nor kept for the requests its load woke): the only state in which a
        model may be unloaded."""
        held = self._held_for is not None and self._held_for.waiters > 0
        return self._state is ModelState.READY and self.busy == 0 and not held

    # --- the Backend surface --------------------------------------------------------------------------

    def ready(self) -> bool:
        """Routable: a request for an unloaded model waits for its load instead of being refused."""
        return self._state is not ModelState.STOPPED

    def capabilities(self) -> BackendCapabilities:
        return (self._inner or self._spec).capabilities()

    def status(self) -> dict[str, Any]:
        current = self._inner or self._loading or self._spec
        try:
            details = dict(current.status())
        except Exception as exc:  # status must never break the admin page
            details = {"error": exc.__class__.__name__}
        progress: float | None = None
        if self._state is ModelState.READY:
            progress = 1.0
        elif self._state is ModelState.LOADING:
            progress = float(details.get("load_progress") or 0.0)
        details.update(
            state=self._state.value,
            load=self.settings.load,
            keep_alive_s=self.settings.keep_alive_s,
            load_progress=progress,
            busy=self.busy,
            waiting_for_load=self._attempt.waiters if self._attempt is not None else 0,
            last_used=self._last_used_wall,
            loads=self._loads,
            unloads=self._unloads,
            load_failures=self._load_failures,
            last_load_s=self._last_load_s,
            load_error=self._load_error,
        )
        return details

    async def boot(self) -> None:
        """A ``boot`` model loads now (a failure fails the daemon's start); an ``on_demand`` one waits."""
        if self.settings.load == "boot":
            await self._load(None)

    async def maintain(self) -> None:
        """Run the loads requests ask for, one at a time, and the keep-alive timer (module docstring)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_alive)
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                attempt = self._attempt
                if attempt is not None:
                    await self._run_attempt(attempt)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the Backend contract takes a deadline
        inner, self._inner = self._inner, None
        self._set(ModelState.STOPPED)
        if inner is not None:
            await inner.stop(timeout)

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        async with self._use() as inner:
            await inner.generate(req, send)

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        async with self._use() as inner:
            await inner.generate_v2(req, send)

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        async with self._use() as inner:
            return await inner.embed(req)

    async def count_tokens(self, req: ResolvedV2) -> int:
        async with self._use() as inner:
            return await inner.count_tokens(req)

    # --- using, loading, unloading ---------------------------------------------------------------------

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[Backend]:
        """The loaded inner backend (loaded first if need be), marked busy for the block."""
        inner = await self._wait_loaded()
        self.busy += 1
        try:
            yield inner
        finally:
            self.busy -= 1
            self.last_used = trio.current_time()
            self._last_used_wall = time.time()
            self._touch()

    async def _wait_loaded(self) -> Backend:
        timeout = self.settings.wait_timeout_s
        with trio.move_on_after(timeout):
            while True:
                if self._state is ModelState.READY and self._inner is not None:
                    return self._inner
                if self._state is ModelState.STOPPED:
                    raise Unavailable(f"model {self.name_!r} is stopped", status=503, code="backend_unavailable")
                attempt = self._attempt
                if attempt is None:
                    attempt = self._attempt = _Attempt()
                    self._wanted.set()
                attempt.waiters += 1
                try:
                    await attempt.done.wait()
                finally:
                    attempt.waiters -= 1
                    self._touch()  # the model may be idle now (a woken waiter that left never used it)
                if attempt.error is not None:
                    raise Unavailable(
                        f"model {self.name_!r} failed to load: {_one_line(attempt.error)}",
                        status=503,
                        code="backend_unavailable",
                    ) from attempt.error
        raise QueueTimeout(
            f"waited more than {timeout:g} s for model {self.name_!r} to load "
            "(or for another model to become idle and make room)"
        )

    async def _run_attempt(self, attempt: _Attempt) -> None:
        """Run one requested load in `maintain`; its waiters learn how it ended (never an exception here)."""
        try:
            await self._load(attempt)
        except Exception as exc:
            attempt.error = exc
        except BaseException:
            attempt.error = Unavailable("the server is stopping", status=503, code="backend_unavailable")
            raise
        finally:
            self._attempt = None
            attempt.done.set()

    async def _load(self, attempt: _Attempt | None) -> None:
        async with self._pool.admitting(), self._transition:
            if self._state is not ModelState.UNLOADED:
                return  # loaded meanwhile, or stopped
            if not await self._pool.make_room(self, attempt):
                log.info("model %r: every request waiting for it left before there was room; load dropped",
                         self.name_)  # fmt: skip
                return
            inner = self._factory()
            self._loading = inner
            self._set(ModelState.LOADING)
            started = trio.current_time()
            log.info("model %r loading", self.name_)
            try:
                await inner.boot()
            except BaseException as exc:
                self._loading = None
                self._load_failures += 1
                self._load_error = _one_line(exc) if isinstance(exc, Exception) else "load cancelled"
                self._set(ModelState.UNLOADED)
                self._observe_load(trio.current_time() - started, ok=False)
                if isinstance(exc, Exception):
                    log.error("model %r failed to load: %s", self.name_, self._load_error)
                try:
                    with _shielded(self.settings.unload_timeout_s):
                        await inner.stop(self.settings.unload_timeout_s)  # whatever a half-done load holds
                except Exception:
                    log.warning("model %r: releasing the failed load failed too", self.name_, exc_info=True)
                raise
            self._loading = None
            self._inner = inner
            self._loads += 1
            self._last_load_s = trio.current_time() - started
            self._load_error = None
            self.last_used = trio.current_time()
            self._held_for = attempt
            self._set(ModelState.READY)
            self._observe_load(self._last_load_s, ok=True)
            log.info("model %r loaded in %.2f s", self.name_, self._last_load_s)

    async def unload(self, reason: UnloadReason) -> None:
        """Stop and drop the inner backend, if the model is still idle (never under a running request)."""
        async with self._transition:
            if not self.idle():
                return
            inner, self._inner = self._inner, None
            assert inner is not None
            self._set(ModelState.UNLOADING)
            timeout = self.settings.unload_timeout_s
            try:
                with _shielded(timeout):
                    await inner.stop(timeout)
            except Exception as exc:  # the model is dropped all the same; the upkeep must go on
                log.warning("model %r did not stop cleanly: %s", self.name_, _one_line(exc))
            finally:
                self._unloads += 1
                self._set(ModelState.UNLOADED)
                if self._pool.events is not None:
                    self._pool.events.observe_model_unload(self.name_, reason.value)
                log.info("model %r unloaded (%s)", self.name_, reason.value)

    async def _keep_alive(self) -> None:
        """Unload the model ``keep_alive_s`` after its last request ended (never while one runs)."""
        keep_alive = self.settings.keep_alive_s
        if keep_alive <= 0:
            return
        while True:
            activity = self._activity
            if self.idle():
                with trio.move_on_at(self.last_used + keep_alive) as scope:
                    await activity.wait()
                if scope.cancelled_caught and self.idle():
                    await self.unload(UnloadReason.KEEP_ALIVE)
            else:
                await activity.wait()

    def _observe_load(self, seconds: float, *, ok: bool) -> None:
        if self._pool.events is not None:
            self._pool.events.observe_model_load(self.name_, seconds, ok=ok)

    def _set(self, state: ModelState) -> None:
        self._state = state
        self._touch()

    def _touch(self) -> None:
        """A state or ``busy`` changed: wake the keep-alive timer and whoever waits for room in the pool."""
        self._activity.set()
        self._activity = trio.Event()
        self._pool.notify()
