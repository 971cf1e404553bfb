"""Routing by model id: the backends that serve it, in priority order, skipping unready ones and open breakers.

Priority: a *lower* ``priority`` number is tried first; ties keep config-file order. The router never fails
over mid-request: it picks one backend per request, and the client owns retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import trio

from adapters.backend import Backend
from adapters.errors import TrinferError, Unavailable, Unsupported
from compat.errors import ModelNotFound

from .admission import Admission
from .breaker import CircuitBreaker, Outcome
from .config import BackendConfig


@dataclass(frozen=True, slots=True, eq=False)
class BackendHandle:
    """A configured backend with its admission queue and circuit breaker (shared by every request)."""

    config: BackendConfig
    backend: Backend
    admission: Admission
    breaker: CircuitBreaker

    @property
    def name(self) -> str:
        return self.config.name

    def status(self) -> dict[str, object]:
        """This backend's entry in /admin/status."""
        try:
            details = self.backend.status()
        except Exception as exc:  # status must never break the admin page
            details = {"error": exc.__class__.__name__}
        return {
            "name": self.config.name,
            "kind": self.config.kind,
            "models": list(self.config.models),
            "priority": self.config.priority,
            "ready": self.backend.ready(),
            "capabilities": self.backend.capabilities().as_dict(),
            "breaker": self.breaker.snapshot(),
            "queue": self.admission.statistics().as_dict(),
            "details": details,
        }


@dataclass(frozen=True, slots=True)
class Route:
    """The backend picked for one request; ``trial`` when it is its half-open breaker's one trial."""

    handle: BackendHandle
    trial: bool

    def record(self, outcome: Outcome) -> None:
        self.handle.breaker.record(outcome, trial=self.trial)


def outcome_of(exc: BaseException | None) -> Outcome:
    """How a request's end reflects on its backend's health (only backend-caused errors count).

    A backend whose send into the request's event channel fails because the consumer closed it (the client
    left while an upstream read was already delivering, or the consumer finished at `Done` while the backend
    still sent) ends with trio's `BrokenResourceError` / `ClosedResourceError`: the consumer went away, which
    says nothing about the backend. Counted as a failure, a burst of clients leaving at once opened the
    breaker of a healthy backend for ``open_s`` (seen in P8, docs/benchmarks.md round 4).
    """
    if exc is None:
        return Outcome.SUCCESS
    if isinstance(exc, TrinferError) and exc.backend_fault:
        return Outcome.FAILURE
    if isinstance(exc, TrinferError | trio.BrokenResourceError | trio.ClosedResourceError):
        return Outcome.NEUTRAL  # client errors, the consumer gone
    if not isinstance(exc, Exception):
        return Outcome.NEUTRAL  # cancellation
    return Outcome.FAILURE  # a bug in the backend


class Router:
    """Maps model ids to backends. See the module docstring."""

    def __init__(self, handles: Sequence[BackendHandle]) -> None:
        ordered = sorted(enumerate(handles), key=lambda pair: (pair[1].config.priority, pair[0]))
        self._handles = tuple(h for _, h in ordered)

    @property
    def handles(self) -> tuple[BackendHandle, ...]:
        """Every backend, in priority order."""
        return self._handles

    def model_ids(self) -> list[str]:
        """Every configured model id, once each, in priority order."""
        seen: dict[str, None] = {}
        for handle in self._handles:
            for model in handle.config.models:
                seen.setdefault(model, None)
        return list(seen)

    def owner(self, model: str) -> BackendHandle:
        """The first backend (by priority) serving ``model``; `ModelNotFound` if none does."""
        return self._candidates(model)[0]

    def _candidates(self, model: str) -> list[BackendHandle]:
        found = [h for h in self._handles if model in h.config.models]
        if not found:
            raise ModelNotFound(f"The model '{model}' does not exist", param="model")
        return found

    def route(self, model: str, *, embed: bool = False) -> Route:
        """Pick the backend for one request. Raises `ModelNotFound` (404), `Unsupported` (400, an embedding
        request for a model no backend embeds with) or `Unavailable` 503 (every candidate unready or open).
        """
        candidates = self._candidates(model)
        if embed:
            candidates = [h for h in candidates if h.backend.capabilities().embed]
            if not candidates:
                raise Unsupported(f"model '{model}' does not support embeddings", param="model")
        retry_after: float | None = None
        for handle in candidates:
            if not handle.backend.ready():
                continue
            verdict = handle.breaker.try_pass()
            if verdict is None:
                wait = handle.breaker.retry_after()
                retry_after = wait if retry_after is None else min(retry_after, wait)
                continue
            return Route(handle, trial=verdict)
        raise Unavailable(
            f"no backend for model '{model}' is available right now",
            status=503,
            code="backend_unavailable",
            retry_after=retry_after,
        )


@contextmanager
def recording(route: Route) -> Iterator[None]:
    """Record the outcome of the work done inside the block on the route's breaker, then re-raise."""
    try:
        yield
    except BaseException as exc:
        route.record(outcome_of(exc))
        raise
    route.record(Outcome.SUCCESS)
