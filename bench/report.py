"""Medians, percentiles and the one table each benchmark prints."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def per_round(values: Sequence[float], rounds: int) -> list[float]:
    """The median of each round's values (``values`` holds the same number of samples for every round)."""
    size = len(values) // rounds
    return [median(values[i * size : (i + 1) * size]) for i in range(rounds)]


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """The median over rounds of ours/theirs, each round's pair measured minutes apart (A B A B ...).

    Pairing by round cancels a noisy minute that hits both targets; taking each target's median separately
    would not (one disturbed round can move one median and not the other).
    """
    return median([ratio(a, b) for a, b in zip(ours, theirs, strict=True)])


def paired_difference(ours: Sequence[float], theirs: Sequence[float]) -> float:
    """The median over rounds of ours - theirs (see `paired_ratio`)."""
    return median([a - b for a, b in zip(ours, theirs, strict=True)])


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pasted as is into docs/benchmarks.md)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if value != value:
                return "n/a"
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
