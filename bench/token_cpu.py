"""Where one stream's tokens cost CPU in trinfer: per-thread CPU time per token at c=1, for one or more trees.

``python -m bench.token_cpu [--rounds N] [--streams K] [ROOT ...]`` starts trinfer's llamacpp backend
(``parallel = 8``, as P7 runs it) from each source tree ``ROOT`` in turn (default: this checkout), warms it
with one stream, then reads every thread's user + system CPU time from ``/proc/PID/task/*/stat`` around K
sequential 128-token streams and divides by the tokens received. The decode thread (the busiest thread after
the main one) is llama.cpp's work plus the engine's per-step Python; the main thread is trio's event loop:
everything between the decode thread's token and the socket write (relay, pipeline, SSE encoding, hypercorn,
h11). At c=1 on one core that loop time is what trinfer spends beyond llama-server, so it is the number to
cut (issue 14, P7). Trees alternate every round; the table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from . import targets
from .http1 import StreamResult
from .p7_concurrency import _one
from .report import median, table
from .servers import CLIENT_CORE

TOKENS = 128
_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """Each thread's name and CPU seconds (user + system) so far, by thread id."""
    out: dict[str, tuple[str, float]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def measure(root: Path, workdir: Path, streams: int, first: int) -> dict[str, float]:
    """ms of CPU per token by role (and the median decode rate) for ``streams`` 128-token streams."""
    backend = {**targets.llamacpp_backend(targets.chat_model_path()), "parallel": 8, "queue": 16}
    with targets.trinfer(workdir, backend, name=f"token-cpu-{root.name}", root=root) as t:
        server = t.server
        _one(server.port, first, [], TOKENS)  # warm-up
        results: list[StreamResult] = []
        before = thread_cpu(server.pid)
        for k in range(streams):
            _one(server.port, first + 1 + k, results, TOKENS)
        after = thread_cpu(server.pid)
    tokens = sum(len(r.token_times) for r in results)
    used = {tid: seconds - before.get(tid, (name, 0.0))[1] for tid, (name, seconds) in after.items()}
    loop = used.pop(str(server.pid), 0.0)
    # Python 3.11 does not name OS threads: the decode thread is the busiest one after the loop.
    decode = max(used.values(), default=0.0)
    spent = {"event loop": loop, "decode thread": decode, "other threads": sum(used.values()) - decode}
    out = {role: 1000 * seconds / tokens for role, seconds in spent.items()}
    out["all threads"] = sum(out.values())
    out["decode tok/s"] = median([r.decode_rate() for r in results])
    return out


def run(roots: list[Path], workdir: Path, rounds: int, streams: int) -> str:
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for round_index in range(rounds):
        for root in roots:
            for key, value in measure(root, workdir, streams, 1000 * round_index).items():
                values[str(root), key].append(value)
    columns = ["event loop", "decode thread", "other threads", "all threads", "decode tok/s"]
    rows = [[str(root), *(median(values[str(root), c]) for c in columns)] for root in roots]
    return table(
        f"CPU per token at c=1 (ms; {streams} x {TOKENS}-token streams per round, medians of {rounds} rounds)",
        ["tree", *(f"{c} ms/token" if c != "decode tok/s" else c for c in columns)],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("roots", nargs="*", type=Path, default=[targets.ROOT])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=6)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    workdir = Path(tempfile.mkdtemp(prefix="trinfer-token-cpu-"))
    print(run([root.resolve() for root in args.roots], workdir, args.rounds, args.streams))


if __name__ == "__main__":
    main()
