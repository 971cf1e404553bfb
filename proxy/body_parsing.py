"""Parsing request bodies without stalling the event loop: large ones are parsed in a worker thread.

Decoding and validating a body is pure Python work proportional to its size (``compat`` walks every value to
refuse lone surrogates and deep nesting, then builds a value object per message). For a body near
``max_body_bytes`` (8 MiB: ~240,000 short messages) that is seconds of CPU; done on the event loop it stalled
every other client, ``/health`` on both listeners included. A body of at least `THREAD_THRESHOLD_BYTES` is
parsed with ``trio.to_thread.run_sync`` instead, at most `MAX_PARALLEL_PARSES` at a time (beyond that,
requests wait their turn, still off the loop): the GIL's switch interval then hands the loop its turn every
few milliseconds. Smaller bodies are parsed inline, which is cheaper than a thread hop.

The thread is not abandoned on cancellation: a client that disconnects mid-parse waits (in its own task) for
its parse to end, so no parse outlives its request; the parse itself is bounded by the body cap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")

#: Bodies (or WebSocket frames) at least this large are parsed off the event loop.
THREAD_THRESHOLD_BYTES = 256 * 1024
#: At most this many large bodies are parsed at once (each holds one worker thread).
MAX_PARALLEL_PARSES = 2

#: The limiter of the current trio run (as trio keeps its own default thread limiter: a `RunVar`).
_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("trinfer_parse_limiter")


def _parse_limiter() -> trio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(MAX_PARALLEL_PARSES)
        _LIMITER.set(limiter)
        return limiter


async def parse_off_loop(size: int, parse: Callable[[], T]) -> T:
    """``parse()`` (of a body of ``size`` bytes): inline when small, in a worker thread when large."""
    if size < THREAD_THRESHOLD_BYTES:
        return parse()
    return await trio.to_thread.run_sync(parse, limiter=_parse_limiter())
