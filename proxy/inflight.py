"""Per-request state and the set of requests in flight, which the graceful stop drains.

`RequestInfo` is created by the ASGI middleware for every HTTP request and put in the ASGI scope under
``"trinfer.request"``: it carries the request id, the request's own nursery (where generation producers run,
so they never outlive the request) and what the log line needs. Work that must end with a clean
``server_shutting_down`` error when the stop deadline passes (waiting in the admission queue, a running
generation) runs inside `RequestInfo.abortable`; `Inflight.abort_all` cancels exactly those scopes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from .metrics import Metrics

SCOPE_KEY = "trinfer.request"


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


@dataclass(eq=False)
class RequestInfo:
    """Mutable per-request state (one request, one task tree). See the module docstring."""

    request_id: str
    method: str
    path: str
    nursery: trio.Nursery | None = None
    model: str | None = None
    status: int | None = None
    #: Why the request ended early, for the log line: "client disconnected", "write timeout", ...
    ended_by: str | None = None
    aborted: bool = False
    #: When the request arrived (trio clock), for the time-to-first-token metric.
    started: float = 0.0
    #: The daemon's metrics, or None where nothing is recorded (the admin listener, unit tests).
    metrics: Metrics | None = None
    _abortables: set[trio.CancelScope] = field(default_factory=set)

    def owned_nursery(self) -> trio.Nursery:
        """The request's nursery; tasks started here are cancelled when the request ends."""
        if self.nursery is None:
            raise RuntimeError("request has no nursery (not running under RequestMiddleware)")
        return self.nursery

    @contextmanager
    def abortable(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that the stop deadline cancels; check ``cancelled_caught`` after the block."""
        scope = trio.CancelScope()
        if self.aborted:
            scope.cancel()
        self._abortables.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._abortables.discard(scope)

    def abort(self) -> None:
        self.aborted = True
        for scope in list(self._abortables):
            scope.cancel()


class Inflight:
    """The requests currently being served by the inference listener."""

    def __init__(self) -> None:
        self._requests: set[RequestInfo] = set()
        self._empty = trio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._requests)

    @contextmanager
    def track(self, info: RequestInfo) -> Iterator[None]:
        if not self._requests:
            self._empty = trio.Event()
        self._requests.add(info)
        try:
            yield
        finally:
            self._requests.discard(info)
            if not self._requests:
                self._empty.set()

    async def wait_empty(self) -> None:
        while self._requests:
            await self._empty.wait()

    def abort_all(self) -> None:
        for info in list(self._requests):
            info.abort()
