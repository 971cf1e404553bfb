"""What a reliability test observes about its own process: resident memory and the trio task tree.

Both are read without third-party help: RSS from ``/proc/self/status`` (Linux), tasks by walking trio's task
tree from the root task. They let a test say "nothing was left behind" about the daemon it runs in-process.
"""

from __future__ import annotations

import gc
from pathlib import Path

import trio


def rss_bytes() -> int:
    """This process's resident set size, after a full garbage collection (so only live memory counts)."""
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            kib = int(line.split()[1])
            return kib * 1024
    raise AssertionError("VmRSS missing from /proc/self/status")


def task_count() -> int:
    """How many trio tasks exist right now, in the whole run (the root task and everything below it)."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

    return count(trio.lowlevel.current_root_task())
