"""The daemon's state as the rest of the proxy sees it: starting -> loading -> ready -> draining -> stopped.

The `Daemon` drives the transitions; views and the admin app only read them (`/ready`, the 503 refusals while
draining, WebSocket sockets that close once the stop has begun). Keeping the state in this small object lets
the views be given it without being given the Daemon.
"""

from __future__ import annotations

import enum

import trio


class DaemonState(enum.StrEnum):
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """The current `DaemonState` and the two moments others wait for: ready, and the stop requested."""

    def __init__(self) -> None:
        self._state = DaemonState.STARTING
        self._ready = trio.Event()
        self._stop_requested = trio.Event()

    @property
    def state(self) -> DaemonState:
        return self._state

    def is_ready(self) -> bool:
        return self._state is DaemonState.READY

    def draining(self) -> bool:
        """True once the graceful stop has begun: every new request is refused with 503."""
        return self._state in (DaemonState.DRAINING, DaemonState.STOPPED)

    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    async def wait_ready(self) -> None:
        """Return once the inference listener is bound (also when a stop came first: nothing will follow)."""
        await self._ready.wait()

    async def wait_draining(self) -> None:
        """Return once the graceful stop has begun."""
        await self._stop_requested.wait()

    # --- transitions, for the Daemon ----------------------------------------------------------------------

    def loading(self) -> None:
        self._state = DaemonState.LOADING

    def serving(self) -> None:
        """The inference listener is bound: ready, unless a stop was requested meanwhile."""
        if not self._stop_requested.is_set():
            self._state = DaemonState.READY
        self._ready.set()

    def request_stop(self) -> bool:
        """Begin draining (idempotent); True the first time."""
        first = not self._stop_requested.is_set()
        if self._state is not DaemonState.STOPPED:
            self._state = DaemonState.DRAINING
        self._stop_requested.set()
        return first

    def stopped(self) -> None:
        self._state = DaemonState.STOPPED
