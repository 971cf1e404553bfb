"""Parsing request bodies without stalling the event loop: large ones are parsed in a worker thread.

Decoding and validating a body is pure Python work proportional to its size (``compat`` walks every value to
refuse lone surrogates and deep nesting, then builds a value object per message). For a body near
``max_body_bytes`` (8 MiB: ~240,000 short messages) that is seconds of CPU; done on the event loop it stalled
every other client, ``/health`` on both listeners included. A body of at least `THREAD_THRESHOLD_BYTES` is
parsed with ``trio.to_thread.run_sync`` instead, at most `MAX_PARALLEL_PARSES` at a time (beyond that,
requests wait their turn, still off the loop): the GIL's switch interval then hands the loop its turn every
few milliseconds. Smaller bodies are parsed inline, which is cheaper than a thread hop.

A thread only helps while it runs Python bytecode: a single C call holds the GIL until it returns, and three
of them were long enough to stall the loop from inside the worker (measured in docs/benchmarks.md):

- ``json.loads`` of the whole body (~0.15 s for 240,000 messages): the body is decoded with
  ``compat.json_body.parse_json(..., interruptible=True)``, which lets other threads in between objects;
- the cyclic garbage collector: building a million container objects triggers about ten full collections, each
  traversing the whole heap, the new graph included (~0.1 s each). While a large parse runs, automatic
  collection is paused (`gc_paused`), and when it ends the objects it made are frozen (``gc.freeze``, a
  constant-time list splice) so no later collection - on whichever thread triggers it - walks them while the
  request lives. They are unfrozen (into the oldest generation) when the next large parse starts with no
  other one running, so cyclic garbage made meanwhile is held at most that long; objects freed by reference
  counting (the request's graph, once it is answered) are freed at once, frozen or not;
- freeing: a graph of a million objects is freed in one deallocation cascade, one C call (~0.05 s for the
  decoded JSON, ~0.15 s for the parsed request), wherever its last reference dies - for the parsed request,
  on the loop, when the view returns. So every container of both graphs is first listed (`_containers`):
  with the list holding each one, no cascade goes deeper than one object, and dropping the list's entries
  parents first (`_release`) frees the graph a piece at a time: the decoded JSON in the worker, the parsed
  request on the loop once the request has ended (`parse_body`'s ``owner``), a batch between checkpoints.

The thread is not abandoned on cancellation: a client that disconnects mid-parse waits (in its own task) for
its parse to end, so no parse outlives its request; the parse itself is bounded by the body cap.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from operator import attrgetter
from typing import Any, TypeVar

import trio

from compat.json_body import parse_json

T = TypeVar("T")

#: Bodies (or WebSocket frames) at least this large are parsed off the event loop.
THREAD_THRESHOLD_BYTES = 256 * 1024
#: At most this many large bodies are parsed at once (each holds one worker thread).
MAX_PARALLEL_PARSES = 2

#: The limiter of the current trio run (as trio keeps its own default thread limiter: a `RunVar`).
_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("trinfer_parse_limiter")


class _CollectorPause:
    """Counts the large parses under way, to pause the garbage collector for as long as any runs.

    The collector's switch is process-wide, so this is one object per process (`gc_paused`); the lock orders
    the worker threads that enter and leave.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._paused = False

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                gc.unfreeze()  # what the last large parse froze goes back into the oldest generation
                self._paused = gc.isenabled()
                gc.disable()
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    gc.freeze()
                    if self._paused:
                        gc.enable()


_COLLECTOR = _CollectorPause()


def gc_paused() -> AbstractContextManager[None]:
    """A context in which automatic garbage collection is paused; its objects are frozen on the way out."""
    return _COLLECTOR.paused()


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

    def paused() -> T:
        with gc_paused():
            return parse()

    return await trio.to_thread.run_sync(paused, limiter=_parse_limiter())


#: `_containers` lists at most this many objects (past that, the rest of a graph is freed in larger pieces).
MAX_LISTED = 4_000_000
#: `release_after` frees this many listed objects between two checkpoints.
RELEASE_BATCH = 2_000
#: How long `release_after` may spend freeing once its request has ended; the rest is then freed at once.
RELEASE_DEADLINE_S = 10.0


def _containers(root: object) -> list[object]:
    """``root`` and the lists, tuples, dicts and dataclass instances under it, each parent before its children.

    Shared objects may be listed twice (nothing here is cyclic: decoded JSON and the value objects built from
    it); listing holds one more reference, which never frees anything early. Types are compared exactly (most
    children are strings, and this walks a million objects): subclasses of the containers are not entered.
    """
    #: Per type seen: how to read its children (None: not a container, not entered).
    readers: dict[type, Callable[[Any], Iterable[object]] | None] = {list: iter, tuple: iter, dict: dict.values}

    def reader(kind: type) -> Callable[[Any], Iterable[object]] | None:
        if kind not in readers:
            names = tuple(getattr(kind, "__dataclass_fields__", None) or ())
            if not names:
                readers[kind] = None
            elif len(names) == 1:
                only = attrgetter(names[0])
                readers[kind] = lambda item: (only(item),)
            else:
                readers[kind] = attrgetter(*names)
        return readers[kind]

    if reader(type(root)) is None:
        return [root]
    listed: list[object] = []
    stack = [root]
    while stack and len(listed) < MAX_LISTED:
        item = stack.pop()
        listed.append(item)
        read = readers[type(item)]
        assert read is not None  # only containers are stacked
        for child in read(item):
            if type(child) is not str and reader(type(child)) is not None:
                stack.append(child)
    return listed


def _release(listed: list[object], start: int = 0, stop: int | None = None) -> None:
    """Drop ``listed[start:stop]``, in order: each entry then frees at most its own object (its children are
    still listed after it), so no single step is long."""
    for index in range(start, len(listed) if stop is None else min(stop, len(listed))):
        listed[index] = None


async def release_after(listed: list[object]) -> None:
    """Keep ``listed`` until cancelled (its owner, the request, ended), then free it a batch at a time on the
    loop, with a checkpoint between batches (shielded, bounded by `RELEASE_DEADLINE_S`)."""
    try:
        await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True, deadline=trio.current_time() + RELEASE_DEADLINE_S):
            for start in range(0, len(listed), RELEASE_BATCH):
                _release(listed, start, start + RELEASE_BATCH)
                await trio.lowlevel.checkpoint()


async def parse_body(body: bytes, parse: Callable[[object], T], owner: trio.Nursery | None = None) -> T:
    """``parse(parse_json(body))``: inline when small; when large, in a worker thread that decodes with
    ``interruptible=True`` and frees the decoded JSON a piece at a time (see the module docstring).

    ``owner`` (the request's nursery) holds the parsed result's objects until it closes, then frees them a
    batch at a time (`release_after`); without it they are freed wherever their last reference dies.
    """
    if len(body) < THREAD_THRESHOLD_BYTES:
        return parse(parse_json(body))

    def decode_and_parse() -> tuple[T, list[object]]:
        with gc_paused():
            value = parse_json(body, interruptible=True)
            decoded = _containers(value)
            del value
            try:
                result = parse(decoded[0])
            finally:
                _release(decoded)
            return result, _containers(result) if owner is not None else []

    result, listed = await trio.to_thread.run_sync(decode_and_parse, limiter=_parse_limiter())
    if owner is not None:
        owner.start_soon(release_after, listed)
    return result
