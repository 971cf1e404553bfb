"""`proxy.body_parsing.gc_paused`: the collector stays paused while any large parse runs, in any thread, and is
left as it was found (running, or disabled by someone else) once the last one ends."""

from __future__ import annotations

import gc
import threading

from proxy.body_parsing import gc_paused


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
