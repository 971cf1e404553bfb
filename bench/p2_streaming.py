"""P2 - streaming relay: SSE chunks per second through one trinfer process (mock, no token delay, long reply).

One client streams a 20,000-token reply at a time and counts the content events between the first and the
last; trinfer runs the mock with ``token_delay_ms = 0``. The quart-trio floor streaming the same number of
fixed chunks is the reference (what the framework and server alone cost per chunk). Rounds alternate.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from . import messages_route, targets
from .http1 import Connection, StreamResult
from .report import median, paired_ratio, per_round, table
from .servers import HOST, Server

TOKENS = 20_000
STREAMS_PER_ROUND = 3


def measure_streams(server: Server) -> list[StreamResult]:
    body = {
        "model": targets.MOCK_MODEL,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "max_tokens": TOKENS,
    }
    results = []
    with Connection(HOST, server.port) as conn:
        conn.stream_chat("/v1/chat/completions", body, parse=False)  # warm-up
        for _ in range(STREAMS_PER_ROUND):
            result = conn.stream_chat("/v1/chat/completions", body, parse=False)
            if result.status != 200 or not result.done or len(result.token_times) != TOKENS:
                raise RuntimeError(f"incomplete stream: {result.status} {len(result.token_times)} tokens")
            results.append(result)
    return results


def run(workdir: Path, *, rounds: int) -> str:
    reply = ["w "] * TOKENS
    rates: dict[str, list[float]] = defaultdict(list)
    for round_index in range(rounds):
        with targets.floor(workdir) as server:
            rates["quart-trio floor"] += [r.decode_rate() for r in measure_streams(server)]
        with targets.trinfer(workdir, targets.mock_backend(reply=reply)) as t:
            rates["trinfer"] += [r.decode_rate() for r in measure_streams(t.server)]
        with targets.trinfer(workdir, targets.mock_backend(reply=reply)) as t:
            rates["trinfer Messages"] += [
                r.decode_rate() for r in messages_route.measure_streams(t.server, TOKENS)
            ]
        print(
            f"  round {round_index + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()), flush=True
        )
    rows = [[name, median(values), min(values), max(values), len(values)] for name, values in rates.items()]
    paired = paired_ratio(per_round(rates["trinfer"], rounds), per_round(rates["quart-trio floor"], rounds))
    rows.append(["trinfer / floor (median of per-round ratios)", paired, "", "", ""])
    messages = paired_ratio(per_round(rates["trinfer Messages"], rounds), per_round(rates["trinfer"], rounds))
    rows.append(["Messages / chat completions (median of per-round ratios; goal >= 0.85)", messages, "", "", ""])
    return table(
        f"P2 streaming relay (SSE content chunks/s, one stream of {TOKENS:,} tokens; goal >= 20,000)",
        ["target", "median chunks/s", "min", "max", "streams"],
        rows,
    )
