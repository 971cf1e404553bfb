"""Per-backend admission: at most ``active`` generations at once, at most ``queue`` more waiting, FIFO.

Theory of operation: a request calls `Admission.acquire`. If a slot is free and nobody is waiting it gets one
at once. Otherwise it joins the FIFO queue, unless the queue is full: then it is refused at once with
`QueueFull` (429 with Retry-After), never blocked. A waiter that is still queued after ``queue_timeout_s``
leaves with `QueueTimeout` (503). A waiter that is cancelled (client disconnect, stop deadline) leaves the
queue at once. Releasing a slot hands it directly to the first waiter, so a later arrival cannot overtake the
queue. A `Slot` is released exactly once (``release`` is idempotent) by whoever owns it last: for a chat
generation that is the producer task, after the backend's ``generate`` has returned.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import trio

from compat.errors import QueueFull, QueueTimeout

#: Seconds a client is told to wait (``Retry-After``) when the queue is full.
RETRY_AFTER_S = 1.0


@dataclass(frozen=True, slots=True)
class AdmissionStatistics:
    """A snapshot for /admin/status and tests."""

    active: int
    queued: int
    active_limit: int
    queue_capacity: int
    admitted_total: int
    rejected_total: int
    timed_out_total: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Waiter:
    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = trio.Event()


class Slot:
    """The right to run one generation on a backend. Release it once the work has really finished."""

    __slots__ = ("_admission", "_released")

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False

    def release(self) -> None:
        """Give the slot back (to the first waiter, if any). Idempotent."""
        if not self._released:
            self._released = True
            self._admission._release()


class Admission:
    """The admission queue of one backend. See the module docstring."""

    def __init__(self, *, active: int, queue: int, queue_timeout_s: float) -> None:
        if active < 1 or queue < 0:
            raise ValueError("active must be >= 1 and queue >= 0")
        self._limit = active
        self._capacity = queue
        self._timeout = queue_timeout_s
        self._active = 0
        self._waiters: deque[_Waiter] = deque()
        self._admitted = 0
        self._rejected = 0
        self._timed_out = 0

    def statistics(self) -> AdmissionStatistics:
        return AdmissionStatistics(
            active=self._active,
            queued=len(self._waiters),
            active_limit=self._limit,
            queue_capacity=self._capacity,
            admitted_total=self._admitted,
            rejected_total=self._rejected,
            timed_out_total=self._timed_out,
        )

    async def acquire(self) -> Slot:
        """A slot, at once or after waiting in line; `QueueFull` or `QueueTimeout` otherwise."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._active < self._limit and not self._waiters:
            self._active += 1
            self._admitted += 1
            return Slot(self)
        if len(self._waiters) >= self._capacity:
            self._rejected += 1
            raise QueueFull(
                "the server is at capacity for this model; retry after a short wait",
                retry_after=RETRY_AFTER_S,
            )
        waiter = _Waiter()
        self._waiters.append(waiter)
        handed_over = False
        try:
            with trio.move_on_after(self._timeout):
                await waiter.granted.wait()
            handed_over = waiter.granted.is_set()
        finally:
            if not handed_over:
                if waiter.granted.is_set():
                    # Handed a slot in the same instant we were cancelled: pass it on.
                    self._release()
                else:
                    self._waiters.remove(waiter)
        if not handed_over:
            self._timed_out += 1
            raise QueueTimeout(f"waited more than {self._timeout:g} s in the queue for a free slot")
        self._admitted += 1
        return Slot(self)

    def _release(self) -> None:
        if self._waiters:
            self._waiters.popleft().granted.set()  # the slot passes on; the active count stays
        else:
            self._active -= 1
