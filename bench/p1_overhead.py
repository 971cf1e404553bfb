"""P1 - proxy overhead: non-streaming chat against a mock, concurrency 1 and 16, trinfer vs its peers.

Targets: trinfer (mock backend, echo), the quart-trio floor (`bench.floor_app`), and LiteLLM's proxy with its
``mock_response``. Each round starts every target in turn (A B C A B C ...), warms it up, and runs ``wrk``
at c=1 then c=16; the server runs on core 0, wrk on core 1. The trinfer process of each round also answers
the same question through the Responses API (``POST /v1/responses``, `wrk.RESPONSES_BODY`), right before or
after its chat runs (the order alternates by round), so the two dialects are compared in the same minute on
the same process. The Anthropic Messages route (`bench.messages_route`) is a contender of its own: a trinfer
process started right after chat's. Medians over the rounds are reported with the ratios the goals are stated
in.
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


@contextmanager
def _trinfer(workdir: Path) -> Iterator[Server]:
    with targets.trinfer(workdir, targets.mock_backend()) as t:
        yield t.server


CHAT = (wrk.CHAT_PATH, wrk.CHAT_BODY)
RESPONSES = (wrk.RESPONSES_PATH, wrk.RESPONSES_BODY)
OURS, OURS_RESPONSES, OURS_MESSAGES = "trinfer", "trinfer Responses", "trinfer Messages"
#: Contenders that send another route's request (path, body) instead of chat's, from a process of their own.
REQUESTS: dict[str, tuple[str, dict[str, object]]] = {
    OURS_MESSAGES: (messages_route.PATH, messages_route.P1_BODY),
}


def measure(
    name: str,
    server: Server,
    round_index: int,
    workdir: Path,
    duration_s: float,
    route: tuple[str, dict[str, object]] = CHAT,
) -> dict[int, wrk.WrkResult]:
    """One round on a running target: a 2 s warm-up, then one ``wrk`` run per concurrency (none may fail),
    each POSTing ``route``'s body to its path."""
    path, body = route
    wrk.run(server.port, connections=16, duration_s=2, workdir=workdir, path=path, body=body)
    results = {}
    for c in CONCURRENCY:
        result = wrk.run(server.port, connections=c, duration_s=duration_s, workdir=workdir, path=path, body=body)
        print(f"  round {round_index + 1} {name} c={c}: {result}", flush=True)
        if result.errors:
            raise RuntimeError(f"{name} c={c}: {result.errors} failed requests")
        results[c] = result
    return results


def run(workdir: Path, *, rounds: int, duration_s: float) -> str:
    contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
        "quart-trio floor": targets.floor,
        OURS: _trinfer,
        OURS_MESSAGES: _trinfer,
    }
    if targets.litellm_available():
        contenders["LiteLLM proxy"] = targets.litellm
    results: dict[tuple[str, int], list[wrk.WrkResult]] = defaultdict(list)
    for round_index in range(rounds):
        for name, start in contenders.items():
            routes = [(name, REQUESTS.get(name, CHAT))]
            if name == OURS:
                routes.append((OURS_RESPONSES, RESPONSES))
                routes = routes if round_index % 2 == 0 else routes[::-1]
            with start(workdir) as server:
                for row, route in routes:
                    for c, result in measure(row, server, round_index, workdir, duration_s, route).items():
                        results[row, c].append(result)
    rows = []
    for name in [*contenders, OURS_RESPONSES]:
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

    floor, ours = "quart-trio floor", OURS
    rps = "requests_per_s"
    summary = [
        *(
            [
                f"trinfer Responses / chat requests/s, c={c}",
                paired_ratio(rounds_of(OURS_RESPONSES, c, rps), rounds_of(ours, c, rps)),
                ">= 0.85",
            ]
            for c in CONCURRENCY
        ),
        *(
            [
                f"Messages / chat completions requests/s, c={c}",
                paired_ratio(rounds_of(OURS_MESSAGES, c, rps), rounds_of(ours, c, rps)),
                ">= 0.85",
            ]
            for c in CONCURRENCY
        ),
        [
            "trinfer / floor requests/s, c=16",
            paired_ratio(rounds_of(ours, 16, rps), rounds_of(floor, 16, rps)),
            ">= 0.6",
        ],
        ["trinfer / floor requests/s, c=1", paired_ratio(rounds_of(ours, 1, rps), rounds_of(floor, 1, rps)), ""],
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
