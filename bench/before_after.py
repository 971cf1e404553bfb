"""P1, P2, P8 (or P5, P7, local model) for two trinfer source trees side by side: did a change cost anything?

``python -m bench.before_after --before /tmp/before --after /tmp/after [--rounds N] [--duration S]``, where each
tree is a checkout of the commit to measure (``git worktree add --detach /tmp/before <commit>``). Every round
runs the quart-trio floor, then "before", then "after" (P1: ``wrk`` at c=1 and c=16 after a warm-up; P2: the
same 20,000-token streams as `bench.p2_streaming`), so a noisy minute on a shared machine hits all three in
the same round. ``--which P8`` runs P8's gateway measurements for both trees in front of one shared mock
upstream, the upstream alone as the floor, in turn each round. What is reported are the medians over
rounds of each round's ratio to that round's floor:
on a loaded host the absolute numbers move a lot between minutes, the paired ratios much less.

``--which P5`` / ``P7`` compare the llamacpp backend of the two trees instead (no floor: before, after, before,
after ...): P5's cancel -> slot free in token intervals (`bench.p5_cancel`), P7's aggregate decode rates and
the TTFT of a request that arrives while 4 streams decode (`bench.p7_concurrency`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path

from . import p5_cancel, p7_concurrency, p8_gateway, targets, wrk
from .p1_overhead import CONCURRENCY, measure
from .p2_streaming import TOKENS, measure_streams
from .report import median, paired_ratio, per_round, table
from .servers import CLIENT_CORE, Server

FLOOR = "quart-trio floor"
PEER = "llama-server"


@contextmanager
def _trinfer_server(workdir: Path, *, root: Path) -> Iterator[Server]:
    with targets.trinfer(workdir, targets.mock_backend(), name=root.name, root=root) as t:
        yield t.server


def _p1(trees: dict[str, Path], workdir: Path, rounds: int, duration_s: float) -> str:
    contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {FLOOR: targets.floor}
    contenders |= {name: partial(_trinfer_server, root=root) for name, root in trees.items()}
    rps: dict[tuple[str, int], list[float]] = defaultdict(list)
    p99: dict[tuple[str, int], list[float]] = defaultdict(list)
    for round_index in range(rounds):
        for name, start in contenders.items():
            with start(workdir) as server:
                for c, result in measure(name, server, round_index, workdir, duration_s).items():
                    rps[name, c].append(result.requests_per_s)
                    p99[name, c].append(result.p99_ms)
    rows = [
        [
            name,
            c,
            median(rps[name, c]),
            median(p99[name, c]),
            paired_ratio(rps[name, c], rps[FLOOR, c]) if name != FLOOR else 1.0,
        ]
        for c in CONCURRENCY
        for name in contenders
    ]
    return table(
        f"P1 before/after (non-streaming, mock; {rounds} interleaved rounds, {duration_s:g} s per wrk run)",
        ["target", "c", "median requests/s", "median p99 ms", "paired ratio to the floor"],
        rows,
    )


def _p2(trees: dict[str, Path], workdir: Path, rounds: int) -> str:
    reply = ["w "] * TOKENS
    rates: dict[str, list[float]] = defaultdict(list)
    for round_index in range(rounds):
        with targets.floor(workdir) as server:
            rates[FLOOR] += [r.decode_rate() for r in measure_streams(server)]
        for name, root in trees.items():
            with targets.trinfer(workdir, targets.mock_backend(reply=reply), name=root.name, root=root) as t:
                rates[name] += [r.decode_rate() for r in measure_streams(t.server)]
        print(
            f"  P2 round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
            flush=True,
        )
    floor_rounds = per_round(rates[FLOOR], rounds)
    rows = [
        [
            name,
            median(values),
            min(values),
            max(values),
            paired_ratio(per_round(values, rounds), floor_rounds) if name != FLOOR else 1.0,
        ]
        for name, values in rates.items()
    ]
    return table(
        f"P2 before/after (SSE content chunks/s, one stream of {TOKENS:,} tokens; {rounds} interleaved rounds)",
        ["target", "median chunks/s", "min", "max", "paired ratio to the floor"],
        rows,
    )


def _p8(trees: dict[str, Path], workdir: Path, rounds: int, duration_s: float) -> str:
    """P8's gateway runs (JSON and SSE, c=1 and c=16) for both trees in front of one shared upstream, with the
    upstream alone as the floor, in turn each round; CPU per request is the gateway's (the upstream's for
    the floor)."""
    results: dict[tuple[str, str, int], list[wrk.WrkResult]] = defaultdict(list)
    cpu: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    with p8_gateway.upstream(workdir) as up:
        contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
            p8_gateway.FLOOR: lambda _workdir: p8_gateway.already_running(up)
        }
        contenders |= {
            name: p8_gateway.trinfer_gateway(up.port, root=root, name=f"gateway-{name}")
            for name, root in trees.items()
        }
        for round_index in range(rounds):
            for name, start in contenders.items():
                with start(workdir) as server:
                    p8_gateway.measure(name, server, round_index, workdir, duration_s, results, cpu)
    rows = []
    for mode in p8_gateway.MODES:
        for c in p8_gateway.CONCURRENCY:
            for name in contenders:
                runs = results[name, mode, c]
                rps = [r.requests_per_s for r in runs]
                rows.append(
                    [
                        name,
                        mode,
                        c,
                        median(rps),
                        median([r.p50_ms for r in runs]),
                        median(cpu[name, mode, c]),
                        paired_ratio(rps, [r.requests_per_s for r in results["before", mode, c]]),
                        paired_ratio(cpu[name, mode, c], cpu["before", mode, c]),
                    ]
                )
    return table(
        f"P8 before/after (gateway in front of one mock upstream; {rounds} interleaved rounds, {duration_s:g} s"
        " per wrk run)",
        ["target", "mode", "c", "requests/s", "p50 ms", "CPU ms/request", "requests/s / before", "CPU / before"],
        rows,
    )


def _p5(trees: dict[str, Path], workdir: Path, rounds: int) -> str:
    """Cancel -> slot free (ms and token intervals), streaming and not, three disconnects of each per round."""
    free: dict[tuple[str, bool], list[float]] = defaultdict(list)
    intervals: dict[str, list[float]] = defaultdict(list)
    backend = targets.llamacpp_backend(targets.chat_model_path())
    i = 0
    for _ in range(rounds):
        for name, root in trees.items():
            with targets.trinfer(workdir, backend, name=f"p5-{name}", root=root) as t:
                interval = p5_cancel._token_interval(t.server, "smollm2")
                intervals[name].append(interval)
                for stream in (True, False):
                    for _ in range(3):
                        i += 1
                        since = p5_cancel._disconnect(t.server, "smollm2", stream=stream, interval=interval, i=i)
                        free[name, stream].append(p5_cancel._wait_slot_free(t.admin_port, since) / interval)
        print(
            "  P5 round: "
            + ", ".join(f"{n} {'stream' if s else 'plain'} {v[-1]:.2f}" for (n, s), v in free.items())
        )
    rows = [
        [
            name,
            "streaming" if stream else "non-streaming",
            median(intervals[name]) * 1000,
            median(free[name, stream]),
        ]
        for name in trees
        for stream in (True, False)
    ]
    return table(
        f"P5 before/after (llamacpp, {rounds} interleaved rounds, 3 disconnects each)",
        ["tree", "request", "median token interval ms", "median disconnect -> slot free, token intervals"],
        rows,
    )


def _p7(trees: dict[str, Path], workdir: Path, rounds: int) -> str:
    """P7's measures for each tree, interleaved with llama-server (when installed) as the reference; ratios
    after/before and each tree/llama-server paired by round."""
    model = targets.chat_model_path()
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    binary = targets.llama_server_binary()
    contenders: dict[str, Callable[[], AbstractContextManager[Server]]] = {
        name: partial(p7_concurrency._trinfer, workdir, model, root) for name, root in trees.items()
    }
    if binary is not None:
        contenders[PEER] = partial(targets.llama_server, workdir, model, binary, parallel=8)
    for round_index in range(rounds):
        for name, start in contenders.items():
            with start() as server:
                results[name].append(p7_concurrency.measure(server.port, round_index))
        print(
            f"  P7 round {round_index + 1}: "
            + "; ".join(f"{n} " + " ".join(f"c{c}={v[-1][f'aggregate c={c}']:.1f}" for c in p7_concurrency.LEVELS)
                        for n, v in results.items()),
            flush=True,
        )  # fmt: skip
    keys = list(results["before"][0])
    header = ["measure", "before (median)", "after (median)", "after / before (paired)"]
    if PEER in results:
        header += [f"{PEER} (median)", "before / llama-server", "after / llama-server"]

    def row(key: str) -> list[object]:
        values = {name: [r[key] for r in runs] for name, runs in results.items()}
        cells: list[object] = [key, median(values["before"]), median(values["after"])]
        cells.append(paired_ratio(values["after"], values["before"]))
        if PEER in values:
            cells += [median(values[PEER])]
            cells += [paired_ratio(values[tree], values[PEER]) for tree in ("before", "after")]
        return cells

    return table(
        f"P7 before/after (llamacpp parallel 8; {rounds} interleaved rounds, each level the median of "
        f"{p7_concurrency.BURSTS} bursts; tok/s, TTFT and step in ms)",
        header,
        [row(key) for key in keys],
    )


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description="P1 and P2 for two trinfer trees, interleaved with the floor")
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier commit")
    parser.add_argument("--after", type=Path, required=True, help="checkout of the later commit")
    parser.add_argument("--which", choices=("P1", "P2", "P8", "both", "P5", "P7"), default="both")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run in P1 (default 5)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(CLIENT_CORE)})
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    workdir = Path(tempfile.mkdtemp(prefix="trinfer-before-after-"))
    print(f"# before/after, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, work files in {workdir}", flush=True)
    for name, root in trees.items():
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        print(f"# {name} = {root} at {head}", flush=True)
    if args.which in ("P1", "both"):
        before = _load()
        p1 = _p1(trees, workdir, args.rounds, args.duration)
        print(p1 + f"\nP1 ran from {before} to {_load()}\n", flush=True)
    if args.which == "P8":
        before = _load()
        p8 = _p8(trees, workdir, args.rounds, args.duration)
        print(p8 + f"\nP8 ran from {before} to {_load()}\n", flush=True)
    if args.which in ("P2", "both"):
        before = _load()
        print(_p2(trees, workdir, args.rounds) + f"\nP2 ran from {before} to {_load()}\n", flush=True)
    if args.which in ("P5", "P7"):
        before = _load()
        result = (_p5 if args.which == "P5" else _p7)(trees, workdir, args.rounds)
        print(result + f"\n{args.which} ran from {before} to {_load()}\n", flush=True)


if __name__ == "__main__":
    main()
