"""`proxy.body_parsing`'s defences against GIL stalls: the collector stays paused while any large parse runs, in
any thread, and is left as it was found (running, or disabled by someone else) once the last one ends; a parsed
graph is held by its owner and then freed a piece at a time, never in one cascade."""

from __future__ import annotations

import gc
import threading
import weakref
from dataclasses import dataclass

import trio
import trio.testing

from proxy.body_parsing import _containers, _release, gc_paused, release_after


def test_overlapping_parses_keep_the_collector_paused_until_the_last_one_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with gc_paused():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with gc_paused():
            second_in.set()
            first_out.wait(10)
            seen["after the first ended"] = gc.isenabled()
        seen["after both ended"] = gc.isenabled()

    assert gc.isenabled()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after the first ended": False, "after both ended": True}
    assert gc.get_freeze_count() > 0  # what they built is frozen: no collection walks it
    with gc_paused():
        assert gc.get_freeze_count() == 0  # and is handed back when the next one starts


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


class Leaf:
    """Something a graph holds that is not a container: freed along with the container that holds it."""


@dataclass(frozen=True, slots=True)
class Node:
    children: tuple[object, ...]


async def test_a_listed_graph_is_freed_a_piece_at_a_time_once_its_owner_ends() -> None:
    leaves = [Leaf() for _ in range(3)]
    alive = [weakref.ref(leaf) for leaf in leaves]
    graph: object = {"messages": [Node((leaves[0],)), Node((leaves[1], [leaves[2]]))]}
    del leaves
    listed = _containers(graph)
    assert [type(item).__name__ for item in listed] == ["dict", "list", "Node", "tuple", "list", "Node", "tuple"]
    del graph
    _release(listed, 0, 2)  # the dict and the outer list: each Node is still listed, so nothing else goes
    assert all(ref() is not None for ref in alive)
    async with trio.open_nursery() as owner:
        owner.start_soon(release_after, listed)
        await trio.testing.wait_all_tasks_blocked()
        assert all(ref() is not None for ref in alive)  # kept while the owner runs
        owner.cancel_scope.cancel()
    assert listed == [None] * 7
    assert all(ref() is None for ref in alive)
