"""P1m - the cost of metrics: P1's non-streaming mock chat at c=16 with ``metrics = true`` and ``false``.

The two configurations alternate within each round (on, off, on, off ...), so a noisy minute hits both; the
ratio reported is the median over rounds of each round's on/off requests/s. Goal: within 5 %.
"""

from __future__ import annotations

from pathlib import Path

from . import targets, wrk
from .report import median, paired_ratio, table

CONNECTIONS = 16


def run(workdir: Path, *, rounds: int, duration_s: float) -> str:
    results: dict[bool, list[wrk.WrkResult]] = {True: [], False: []}
    for round_index in range(rounds):
        for enabled in (True, False):
            name = f"trinfer-metrics-{'on' if enabled else 'off'}"
            with targets.trinfer(workdir, targets.mock_backend(), name=name, server={"metrics": enabled}) as t:
                wrk.run(t.server.port, connections=CONNECTIONS, duration_s=2, workdir=workdir)  # warm-up
                result = wrk.run(t.server.port, connections=CONNECTIONS, duration_s=duration_s, workdir=workdir)
                print(f"  round {round_index + 1} {name}: {result}", flush=True)
                if result.errors:
                    raise RuntimeError(f"{name}: {result.errors} failed requests")
                results[enabled].append(result)
    rows = [
        [
            "on" if enabled else "off",
            median([r.requests_per_s for r in runs]),
            median([r.p50_ms for r in runs]),
            median([r.p99_ms for r in runs]),
            len(runs),
        ]
        for enabled, runs in results.items()
    ]
    ratio = paired_ratio([r.requests_per_s for r in results[True]], [r.requests_per_s for r in results[False]])
    return table(
        f"P1m metrics on vs off (non-streaming mock, c={CONNECTIONS}; medians)",
        ["metrics", "requests/s", "p50 ms", "p99 ms", "rounds"],
        rows,
    ) + table("P1m ratio (median of per-round ratios)", ["measure", "value", "goal"], [
        ["metrics on / off requests/s", ratio, ">= 0.95"],
    ])  # fmt: skip
