"""P8 - gateway overhead: trinfer ``kind = "openai"`` and LiteLLM's proxy in front of the same upstream.

The upstream is one trinfer process with the mock backend (echo, no delay), pinned to the client core with
wrk (a C load generator that needs little CPU); each gateway runs on the server core. Targets, in turn each
round (A B C A B C ...):

- ``upstream alone``: wrk straight at the upstream - the floor;
- ``gateway floor (raw ASGI + trinfer's client)`` and ``gateway floor (quart-trio + trinfer's client)``:
  `bench.floor_gateway`, the least gateway on trinfer's fixed stack (forward the body, relay the answer as it
  is), without and with quart - what any gateway on hypercorn + trio + trinfer's HTTP client adds, whatever it
  does besides;
- ``trinfer openai``: trinfer with one ``kind = "openai"`` backend whose only base URL is the upstream;
- ``LiteLLM proxy``: LiteLLM with one ``openai/`` model whose ``api_base`` is the upstream.

Each is measured non-streaming and streaming (``"stream": true``: wrk times the whole SSE response), at c=1
and c=16. The goals are stated as paired ratios and differences per round (median over rounds), which is
what stays meaningful on a shared machine: added p50 over the floor at c=1 <= 1 ms, and trinfer's requests/s
at c=16 >= 5x LiteLLM's. Each run also records the CPU time the measured process tree used per request (the
gateway's; the upstream's for the floor), read from /proc: on a busy machine it moves far less than latency
or throughput, so it says what each gateway costs even when the clock says little.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from . import targets, wrk
from .report import median, paired_difference, paired_ratio, table
from .servers import CLIENT_CORE, Server, free_port, running

CONCURRENCY = (1, 16)
MODES = {"json": wrk.CHAT_BODY, "stream": {**wrk.CHAT_BODY, "stream": True}}
FLOOR, OURS, LITELLM = "upstream alone", "trinfer openai", "LiteLLM proxy"
RAW_GATEWAY = "gateway floor (raw ASGI + trinfer's client)"
QUART_GATEWAY = "gateway floor (quart-trio + trinfer's client)"
#: The floor gateways' short names in the paired rows.
SHORT = {RAW_GATEWAY: "raw-ASGI floor", QUART_GATEWAY: "quart-trio floor"}


@contextmanager
def upstream(workdir: Path) -> Iterator[Server]:
    """The shared upstream: trinfer with the mock, on the client core."""
    port, admin_port = free_port(), free_port()
    config = targets.trinfer_config(workdir / "p8-upstream.toml", port, admin_port, targets.mock_backend())
    argv = [targets.PYTHON, "-m", "proxy", "serve", "--config", str(config)]
    env = {"PYTHONPATH": str(targets.ROOT)}
    with running(
        "p8-upstream",
        argv,
        port=port,
        ready_path="/ready",
        ready_port=admin_port,
        workdir=workdir,
        env=env,
        core=CLIENT_CORE,
    ) as server:
        yield server


def trinfer_gateway(
    upstream_port: int, *, root: Path = targets.ROOT, name: str = "trinfer-openai"
) -> Callable[[Path], AbstractContextManager[Server]]:
    """trinfer with one ``openai`` backend in front of the upstream, run from the source tree ``root``."""

    @contextmanager
    def start(workdir: Path) -> Iterator[Server]:
        backend = {
            "name": "fleet",
            "kind": "openai",
            "models": [targets.MOCK_MODEL],
            "active": 64,
            "queue": 64,
            "base_urls": [f"http://127.0.0.1:{upstream_port}/v1"],
        }
        with targets.trinfer(workdir, backend, name=name, root=root) as t:
            yield t.server

    return start


def floor_gateway(upstream_port: int, *, raw: bool) -> Callable[[Path], AbstractContextManager[Server]]:
    def start(workdir: Path) -> AbstractContextManager[Server]:
        return targets.floor_gateway(workdir, upstream_port, raw=raw)

    return start


def litellm_gateway(upstream_port: int) -> Callable[[Path], AbstractContextManager[Server]]:
    def start(workdir: Path) -> AbstractContextManager[Server]:
        return targets.litellm(workdir, api_base=f"http://127.0.0.1:{upstream_port}/v1")

    return start


def run(workdir: Path, *, rounds: int, duration_s: float) -> str:
    results: dict[tuple[str, str, int], list[wrk.WrkResult]] = defaultdict(list)
    #: CPU milliseconds per request of the gateway process (the upstream's for the floor), per run.
    cpu: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    with upstream(workdir) as up:
        contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
            FLOOR: lambda _workdir: already_running(up),
            RAW_GATEWAY: floor_gateway(up.port, raw=True),
            QUART_GATEWAY: floor_gateway(up.port, raw=False),
            OURS: trinfer_gateway(up.port),
        }
        if targets.litellm_available():
            contenders[LITELLM] = litellm_gateway(up.port)
        for round_index in range(rounds):
            for name, start in contenders.items():
                with start(workdir) as server:
                    measure(name, server, round_index, workdir, duration_s, results, cpu)
    rows = [
        [
            name,
            mode,
            c,
            median([r.requests_per_s for r in runs]),
            median([r.p50_ms for r in runs]),
            median([r.p99_ms for r in runs]),
            median(cpu[name, mode, c]),
            len(runs),
        ]
        for (name, mode, c), runs in results.items()
    ]
    out = table(
        "P8 gateway overhead (mock upstream; medians)",
        ["target", "mode", "c", "requests/s", "p50 ms", "p99 ms", "CPU ms/request", "rounds"],
        rows,
    )

    def of(name: str, mode: str, c: int, attr: str) -> list[float]:
        return [getattr(r, attr) for r in results[name, mode, c]]

    rps = "requests_per_s"

    def added(name: str, mode: str) -> list[float]:
        """Each round's p50 of ``name`` minus the upstream's, at c=1."""
        return [a - b for a, b in zip(of(name, mode, 1, "p50_ms"), of(FLOOR, mode, 1, "p50_ms"), strict=True)]

    summary = []
    for mode in MODES:
        summary.append(
            [f"trinfer added p50 over the upstream, {mode}, c=1 (ms)", median(added(OURS, mode)), "<= 1"]
        )
        for gateway in (RAW_GATEWAY, QUART_GATEWAY):
            summary.append(
                [
                    f"{SHORT[gateway]} added p50 over the upstream, {mode}, c=1 (ms)",
                    median(added(gateway, mode)),
                    "",
                ]
            )
        summary += [
            [
                f"quart's share: quart-trio floor - raw-ASGI floor p50, {mode}, c=1 (ms)",
                paired_difference(of(QUART_GATEWAY, mode, 1, "p50_ms"), of(RAW_GATEWAY, mode, 1, "p50_ms")),
                "",
            ],
            [
                f"trinfer added p50 over the quart-trio floor, {mode}, c=1 (ms)",
                paired_difference(of(OURS, mode, 1, "p50_ms"), of(QUART_GATEWAY, mode, 1, "p50_ms")),
                "",
            ],
            [
                f"trinfer / quart-trio floor added p50, {mode}, c=1",
                paired_ratio(added(OURS, mode), added(QUART_GATEWAY, mode)),
                "",
            ],
            [
                f"trinfer / quart-trio floor CPU per request, {mode}, c=1",
                paired_ratio(cpu[OURS, mode, 1], cpu[QUART_GATEWAY, mode, 1]),
                "",
            ],
            [
                f"trinfer / quart-trio floor requests/s, {mode}, c=16",
                paired_ratio(of(OURS, mode, 16, rps), of(QUART_GATEWAY, mode, 16, rps)),
                "",
            ],
        ]
        if LITELLM in contenders:
            summary.append(
                [
                    f"LiteLLM added p50 over the upstream, {mode}, c=1 (ms)",
                    paired_difference(of(LITELLM, mode, 1, "p50_ms"), of(FLOOR, mode, 1, "p50_ms")),
                    "",
                ]
            )
            summary.append(
                [
                    f"LiteLLM / trinfer CPU per request, {mode}, c=16",
                    paired_ratio(cpu[LITELLM, mode, 16], cpu[OURS, mode, 16]),
                    "",
                ]
            )
            summary.append(
                [
                    f"trinfer / LiteLLM requests/s, {mode}, c=16",
                    paired_ratio(of(OURS, mode, 16, rps), of(LITELLM, mode, 16, rps)),
                    ">= 5",
                ]
            )
        summary.append(
            [
                f"trinfer / upstream requests/s, {mode}, c=16",
                paired_ratio(of(OURS, mode, 16, rps), of(FLOOR, mode, 16, rps)),
                "",
            ]
        )
    return (
        out
        + "\n"
        + table("P8 paired (median over rounds of each round's value)", ["measure", "value", "goal"], summary)
    )


def measure(
    name: str,
    server: Server,
    round_index: int,
    workdir: Path,
    duration_s: float,
    results: dict[tuple[str, str, int], list[wrk.WrkResult]],
    cpu: dict[tuple[str, str, int], list[float]],
) -> None:
    """One target's runs in one round, after a warm-up: wrk's result and CPU ms per request, per mode and c."""
    # Warm-up, long enough for LiteLLM's first requests (seconds each on a busy machine).
    wrk.run(server.port, connections=16, duration_s=max(5.0, duration_s), workdir=workdir)
    for mode, body in MODES.items():
        for c in CONCURRENCY:
            before = server.cpu_seconds()
            result = wrk.run(server.port, connections=c, duration_s=duration_s, workdir=workdir, body=body)
            used_ms = 1000 * (server.cpu_seconds() - before)
            cpu[name, mode, c].append(used_ms / max(1, result.requests))
            print(f"  round {round_index + 1} {name} {mode} c={c}: {result}", flush=True)
            if result.errors:
                raise RuntimeError(f"{name} {mode} c={c}: {result.errors} failed requests")
            results[name, mode, c].append(result)


@contextmanager
def already_running(server: Server) -> Iterator[Server]:
    yield server
