"""`Admission` unit tests: immediate slots, FIFO hand-over, refusal at once, timeouts, cancelled waiters."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from compat.errors import QueueFull, QueueTimeout
from proxy.admission import Admission, Slot


async def test_slots_up_to_active_are_given_at_once() -> None:
    admission = Admission(active=2, queue=0, queue_timeout_s=10)
    first, second = await admission.acquire(), await admission.acquire()
    stats = admission.statistics()
    assert (stats.active, stats.queued, stats.admitted_total) == (2, 0, 2)
    with pytest.raises(QueueFull) as caught:
        await admission.acquire()
    assert caught.value.retry_after == 1.0
    first.release()
    first.release()  # idempotent: one slot back, not two
    assert admission.statistics().active == 1
    second.release()
    assert admission.statistics().as_dict() == {
        "active": 0,
        "queued": 0,
        "active_limit": 2,
        "queue_capacity": 0,
        "admitted_total": 2,
        "rejected_total": 1,
        "timed_out_total": 0,
    }


async def test_waiters_are_served_first_in_first_out(autojump_clock: trio.abc.Clock) -> None:
    admission = Admission(active=1, queue=3, queue_timeout_s=100)
    holder = await admission.acquire()
    order: list[int] = []
    slots: list[Slot] = []

    async def wait(n: int) -> None:
        slot = await admission.acquire()
        order.append(n)
        slots.append(slot)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(wait, n)
                await trio.testing.wait_all_tasks_blocked()
            assert admission.statistics().queued == 3
            with pytest.raises(QueueFull):
                await admission.acquire()  # the queue is full: refused, not queued
            holder.release()
            for expected in range(3):
                await trio.testing.wait_all_tasks_blocked()
                assert order == list(range(expected + 1))
                # A newcomer arriving now cannot overtake the queue.
                assert admission.statistics().active == 1
                slots[-1].release()
    assert admission.statistics().active == 0


async def test_waiting_past_queue_timeout_raises_and_leaves_the_queue(autojump_clock: trio.abc.Clock) -> None:
    admission = Admission(active=1, queue=1, queue_timeout_s=5)
    await admission.acquire()
    with trio.fail_after(60), pytest.raises(QueueTimeout):
        await admission.acquire()
    stats = admission.statistics()
    assert (stats.queued, stats.timed_out_total, stats.active) == (0, 1, 1)


async def test_a_cancelled_waiter_leaves_the_queue_at_once() -> None:
    admission = Admission(active=1, queue=1, queue_timeout_s=100)
    holder = await admission.acquire()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(admission.acquire)
            await trio.testing.wait_all_tasks_blocked()
            assert admission.statistics().queued == 1
            nursery.cancel_scope.cancel()
        assert admission.statistics().queued == 0
        holder.release()
        assert admission.statistics().active == 0  # nobody was handed the slot


async def test_a_slot_handed_to_a_waiter_cancelled_in_the_same_instant_is_passed_on() -> None:
    admission = Admission(active=1, queue=2, queue_timeout_s=100)
    holder = await admission.acquire()
    got: list[Slot] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            cancelled_waiter = trio.CancelScope()

            async def first() -> None:
                with cancelled_waiter:
                    got.append(await admission.acquire())

            async def second() -> None:
                got.append(await admission.acquire())

            nursery.start_soon(first)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            cancelled_waiter.cancel()  # `first` is cancelled, but has not run its cleanup yet...
            holder.release()  # ...when the slot is handed to it (it is still first in line)
    assert len(got) == 1  # `second` got it
    assert admission.statistics().active == 1
    got[0].release()
    assert admission.statistics().active == 0
