"""The daemon's own event-loop stalls while curl sends it the largest allowed body: no client noise.

``python bench/big_body_loop.py TREE [TREE ...] [--rounds N]`` (a file, not a module: it imports the trinfer
of each TREE, in a process of its own, so one run compares trees side by side, round after round). Each
measurement runs a daemon (mock backend, default ``max_body_bytes``) inside a trio run together with one
task that sleeps 1 ms at a time and records how long each sleep really took; curl, a process of its own,
sends one body just under the cap (one 7.9 MiB message, or ~240,000 short messages, as `bench.big_body`
builds them). The longest gap is how long the event loop - every listener, ``/health`` included - could not
run. ``bench.big_body`` measures the same through HTTP probes, which also count the probing client's and the
operating system's delays (its no-big-request baseline shows how much that is on a loaded machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _measure_here(tree: Path) -> dict[str, object]:
    """In this process: run ``tree``'s daemon with the ticker, once per body; the gaps seen."""
    sys.path.insert(0, str(tree))
    os.chdir(tree)
    import trio

    from bench.big_body import big_content, many_messages  # this tree's copy: the same bodies in every tree
    from tests.daemon_harness import mock_config, running_daemon

    async def one(body: bytes) -> dict[str, object]:
        gaps: list[float] = []
        done = trio.Event()

        async def tick() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await trio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        with tempfile.NamedTemporaryFile(suffix=".json") as file:
            file.write(body)
            file.flush()
            async with running_daemon(mock_config()) as d, trio.open_nursery() as nursery:
                nursery.start_soon(tick)
                await trio.sleep(0.1)
                started = time.perf_counter()
                sent = await trio.run_process(
                    ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json",
                     "--data-binary", f"@{file.name}", f"{d.inference_url}/v1/chat/completions"],
                    capture_stdout=True,
                )  # fmt: skip
                took = time.perf_counter() - started
                await trio.sleep(1.0)  # what the request parsed is freed after its answer
                done.set()
        ordered = sorted(gaps)
        return {
            "status": int(sent.stdout),
            "request_s": round(took, 2),
            "max_gap_ms": round(ordered[-1] * 1000, 1),
            "second_gap_ms": round(ordered[-2] * 1000, 1),
            "p99_gap_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1),
        }

    async def both() -> dict[str, object]:
        return {
            "one 7.9 MiB message": await one(big_content()),
            "~240k short messages": await one(many_messages()),
        }

    return trio.run(both)


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 1
    trees = [Path(a).resolve() for a in argv if not a.startswith("--") and not a.isdigit()]
    for round_index in range(rounds):
        for tree in trees:
            ran = subprocess.run(
                [sys.executable, __file__, "--here", str(tree)], capture_output=True, text=True, check=True
            )
            print(json.dumps({"round": round_index, "tree": str(tree), **json.loads(ran.stdout)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--here":
        print(json.dumps(_measure_here(Path(sys.argv[2]))))
    else:
        main(sys.argv[1:])
