"""Waiting in a trio test for state the decode thread changes: that thread cannot wake a trio task, so the test
polls, every 2 ms, for at most ``polls`` tries (each test's own fail_after guard is the deadline that matters)."""

from __future__ import annotations

from collections.abc import Callable

import trio


async def wait_until(condition: Callable[[], bool], *, polls: int = 20_000) -> None:
    """Return once ``condition()`` holds; fail after ``polls`` tries 2 ms apart."""
    for _ in range(polls):
        if condition():
            return
        await trio.sleep(0.002)
    raise AssertionError("condition never held")
