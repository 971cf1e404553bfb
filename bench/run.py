"""Run the benchmarks and print their tables: ``python -m bench.run P1|P2|P3|P5|P6|P7|P8|all [options]``.

Run from the repository root with trinfer's venv (``.venv/bin/python -m bench.run all``), after
``bash bench/setup_peers.sh``. Missing peers are skipped and said so. Work files (configs, server logs) go to
a temporary directory that is printed and kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from .servers import CLIENT_CORE

BENCHMARKS = ("P1", "P1m", "P2", "P3", "P5", "P6", "P7", "P8", "P9")


def main() -> None:
    parser = argparse.ArgumentParser(description="trinfer benchmarks against peers (see docs/benchmarks.md)")
    parser.add_argument("which", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per target (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run in P1 (default 10)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})  # the client side; servers are pinned to SERVER_CORE
    workdir = Path(tempfile.mkdtemp(prefix="trinfer-bench-"))
    print(f"# trinfer benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, work files in {workdir}")
    print(f"# {platform.platform()}, {load()}")
    chosen = BENCHMARKS if args.which == "all" else (args.which,)
    tables = []
    for name in chosen:
        print(f"\n## {name}", flush=True)
        before = load()
        tables.append(
            run_one(name, workdir, args.rounds, args.duration) + f"\n{name} ran from {before} to {load()}\n"
        )
        print(tables[-1], flush=True)
    if len(tables) > 1:
        print("\n## all results\n")
        print("\n".join(tables))


def load() -> str:
    """The time and load averages, to show how quiet the machine was around a benchmark."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_one(name: str, workdir: Path, rounds: int, duration: float) -> str:
    if name == "P1":
        from . import p1_overhead

        return p1_overhead.run(workdir, rounds=rounds, duration_s=duration)
    if name == "P1m":
        from . import p1_metrics

        return p1_metrics.run(workdir, rounds=rounds, duration_s=duration)
    if name == "P2":
        from . import p2_streaming

        return p2_streaming.run(workdir, rounds=rounds)
    if name == "P3":
        from . import p3_local_model

        return p3_local_model.run(workdir, rounds=rounds)
    if name == "P5":
        from . import p5_cancel

        return p5_cancel.run(workdir, rounds=rounds)
    if name == "P7":
        from . import p7_concurrency

        return p7_concurrency.run(workdir, rounds=rounds)
    if name == "P9":
        from . import p9_models_swap

        return p9_models_swap.run(workdir, rounds=rounds)
    if name == "P8":
        from . import p8_gateway

        return p8_gateway.run(workdir, rounds=rounds, duration_s=duration)
    from . import p6_idle

    return p6_idle.run(workdir, rounds=rounds)


if __name__ == "__main__":
    main()
