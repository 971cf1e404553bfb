"""A per-backend circuit breaker: skip a backend that keeps failing, then let one trial request decide.

Theory of operation (times from ``trio.current_time()``, so tests run on the autojump clock):

    state       on backend-caused failure                 on success           on time
    closed      count it; ``threshold`` within ``window_s``  forget failures      -
                -> open
    open        -                                         -                    ``open_s`` later -> half-open
    half-open   -> open (a fresh ``open_s``)               -> closed            -

Only errors whose class says ``backend_fault = True`` count. In half-open, `try_pass` lets exactly one request
through (the trial); everyone else is refused until its outcome is recorded. A trial that ends with neither
success nor a backend fault (client disconnect, invalid request, queue full) gives the trial back.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

import trio


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"  # backend-caused
    NEUTRAL = "neutral"  # says nothing about the backend's health


class CircuitBreaker:
    """See the module docstring."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        window_s: float = 60.0,
        open_s: float = 30.0,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._threshold = threshold
        self._window = window_s
        self._open_for = open_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._trial_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._open_for:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def try_pass(self) -> bool | None:
        """May a request go to this backend? ``None``: no; ``False``: yes; ``True``: yes, as the trial."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN or self._trial_out:
            return None
        self._trial_out = True
        return True

    def record(self, outcome: Outcome, *, trial: bool) -> None:
        """Record how a request that `try_pass` let through ended."""
        now = self._clock()
        if trial:
            self._trial_out = False
        if outcome is Outcome.SUCCESS:
            if trial or self._opened_at is None:
                self._opened_at = None
                self._failures.clear()
        elif outcome is Outcome.FAILURE:
            if self._opened_at is not None:
                if trial:  # the trial failed: open again for a full period
                    self._opened_at = now
                return
            self._failures.append(now)
            while self._failures and now - self._failures[0] > self._window:
                self._failures.popleft()
            if len(self._failures) >= self._threshold:
                self._opened_at = now
                self._failures.clear()

    def snapshot(self) -> dict[str, object]:
        """For /admin/status."""
        return {
            "state": self.state.value,
            "recent_failures": len(self._failures),
            "retry_after_s": round(self.retry_after(), 3),
        }
