"""P1 - proxy overhead: non-streaming chat against a mock, concurrency 1 and 16, trinfer vs its peers.

Targets: trinfer (mock backend, echo), the quart-trio floor (`bench.floor_app`), and LiteLLM's proxy with its
``mock_response``. Each round starts every target in turn (A B C A B C ...), warms it up, and runs ``wrk``
at c=1 then c=16; the server runs on core 0, wrk on core 1. Medians over the rounds are reported with the
ratios the goals are stated in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from . import messages_route, targets, wrk
from .report import median, paired_difference, paired_ratio, table
from .servers import Server

CONCURRENCY = (1, 16)
#: Contenders that send another route's request (path, body) instead of chat's.
REQUESTS: dict[str, tuple[str, dict[str, object]]] = {
    "trinfer Messages": (messages_route.PATH, messages_route.P1_BODY),
}


@contextmanager
def _trinfer(workdir: Path) -> Iterator[Server]:
    with targets.trinfer(workdir, targets.mock_backend()) as t:
        yield t.server


def measure(
    name: str, server: Server, round_index: int, workdir: Path, duration_s: float
) -> dict[int, wrk.WrkResult]:
    """One round on a running target: a 2 s warm-up, then one ``wrk`` run per concurrency (none may fail)."""
    path, body = REQUESTS.get(name, ("/v1/chat/completions", wrk.CHAT_BODY))
    wrk.run(server.port, connections=16, duration_s=2, workdir=workdir, body=body, path=path)
    results = {}
    for c in CONCURRENCY:
        result = wrk.run(server.port, connections=c, duration_s=duration_s, workdir=workdir, body=body, path=path)
        print(f"  round {round_index + 1} {name} c={c}: {result}", flush=True)
        if result.errors:
            raise RuntimeError(f"{name} c={c}: {result.errors} failed requests")
        results[c] = result
    return results


def run(workdir: Path, *, rounds: int, duration_s: float) -> str:
    contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
        "quart-trio floor": targets.floor,
        "trinfer": _trinfer,
        "trinfer Messages": _trinfer,
    }
    if targets.litellm_available():
        contenders["LiteLLM proxy"] = targets.litellm
    results: dict[tuple[str, int], list[wrk.WrkResult]] = defaultdict(list)
    for round_index in range(rounds):
        for name, start in contenders.items():
            with start(workdir) as server:
                for c, result in measure(name, server, round_index, workdir, duration_s).items():
                    results[name, c].append(result)
    rows = []
    for name in contenders:
        for c in CONCURRENCY:
            runs = results[name, c]
            rows.append(
                [
                    name,
                    c,
                    median([r.requests_per_s for r in runs]),
                    median([r.p50_ms for r in runs]),
                    median([r.p99_ms for r in runs]),
                    len(runs),
                ]
            )
    out = table(
        "P1 proxy overhead (non-streaming, mock; medians)",
        ["target", "c", "requests/s", "p50 ms", "p99 ms", "rounds"],
        rows,
    )

    def rounds_of(name: str, c: int, attr: str) -> list[float]:
        return [getattr(r, attr) for r in results[name, c]]

    floor, ours = "quart-trio floor", "trinfer"
    rps = "requests_per_s"
    summary = [
        [
            "trinfer / floor requests/s, c=16",
            paired_ratio(rounds_of(ours, 16, rps), rounds_of(floor, 16, rps)),
            ">= 0.6",
        ],
        ["trinfer / floor requests/s, c=1", paired_ratio(rounds_of(ours, 1, rps), rounds_of(floor, 1, rps)), ""],
        *[
            [
                f"Messages / chat completions requests/s, c={c}",
                paired_ratio(rounds_of("trinfer Messages", c, rps), rounds_of(ours, c, rps)),
                ">= 0.85",
            ]
            for c in CONCURRENCY
        ],
        [
            "added p50 over the floor, c=1 (ms)",
            paired_difference(rounds_of(ours, 1, "p50_ms"), rounds_of(floor, 1, "p50_ms")),
            "<= 0.5",
        ],
        [
            "added p99 over the floor, c=16 (ms)",
            paired_difference(rounds_of(ours, 16, "p99_ms"), rounds_of(floor, 16, "p99_ms")),
            "<= 15",
        ],
    ]
    if "LiteLLM proxy" in contenders:
        summary.append(
            [
                "trinfer / LiteLLM requests/s, c=16",
                paired_ratio(rounds_of(ours, 16, rps), rounds_of("LiteLLM proxy", 16, rps)),
                ">= 5",
            ]
        )
    return (
        out
        + "\n"
        + table("P1 ratios (median over rounds of each round's ratio)", ["measure", "value", "goal"], summary)
    )
