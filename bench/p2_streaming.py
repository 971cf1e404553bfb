"""P2 - streaming relay: SSE chunks per second through one trinfer process (mock, no token delay, long reply).

One client streams a 20,000-token reply at a time and counts the content events between the first and the
last; trinfer runs the mock with ``token_delay_ms = 0``. The quart-trio floor streaming the same number of
fixed chunks is the reference (what the framework and server alone cost per chunk). Rounds alternate. The
trinfer process of each round also streams the same reply through the Responses API (``POST /v1/responses``,
one ``response.output_text.delta`` event per token), its streams alternating with the chat ones, so the two
dialects are compared on the same process in the same minute. The Anthropic Messages route streams the same
reply from a trinfer process of its own, right after (`bench.messages_route`).
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

CHAT_BODY = {
    "model": targets.MOCK_MODEL,
    "messages": [{"role": "user", "content": "go"}],
    "stream": True,
    "max_tokens": TOKENS,
}
RESPONSES_BODY = {
    "model": targets.MOCK_MODEL,
    "input": [{"role": "user", "content": "go"}],
    "stream": True,
    "max_output_tokens": TOKENS,
}


def _complete(result: StreamResult, what: str) -> StreamResult:
    if result.status != 200 or not result.done or len(result.token_times) != TOKENS:
        raise RuntimeError(f"incomplete {what} stream: {result.status} {len(result.token_times)} tokens")
    return result


def _chat_stream(conn: Connection) -> StreamResult:
    return _complete(conn.stream_chat("/v1/chat/completions", CHAT_BODY, parse=False), "chat")


def _responses_stream(conn: Connection) -> StreamResult:
    result = conn.stream_typed(
        "/v1/responses", RESPONSES_BODY, delta="response.output_text.delta", final="response.completed"
    )
    return _complete(result, "Responses")


def measure_streams(server: Server) -> list[StreamResult]:
    """`STREAMS_PER_ROUND` chat streams on one connection, after a warm-up stream."""
    with Connection(HOST, server.port) as conn:
        conn.stream_chat("/v1/chat/completions", CHAT_BODY, parse=False)  # warm-up
        return [_chat_stream(conn) for _ in range(STREAMS_PER_ROUND)]


def measure_dialects(server: Server) -> tuple[list[StreamResult], list[StreamResult]]:
    """Chat and Responses streams on one connection, alternating (chat first), after one warm-up of each."""
    chat, responses = [], []
    with Connection(HOST, server.port) as conn:
        conn.stream_chat("/v1/chat/completions", CHAT_BODY, parse=False)
        _responses_stream(conn)
        for _ in range(STREAMS_PER_ROUND):
            chat.append(_chat_stream(conn))
            responses.append(_responses_stream(conn))
    return chat, responses


def run(workdir: Path, *, rounds: int) -> str:
    reply = ["w "] * TOKENS
    rates: dict[str, list[float]] = defaultdict(list)
    for round_index in range(rounds):
        with targets.floor(workdir) as server:
            rates["quart-trio floor"] += [r.decode_rate() for r in measure_streams(server)]
        with targets.trinfer(workdir, targets.mock_backend(reply=reply)) as t:
            chat, responses = measure_dialects(t.server)
            rates["trinfer"] += [r.decode_rate() for r in chat]
            rates["trinfer Responses"] += [r.decode_rate() for r in responses]
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
    dialects = paired_ratio(rates["trinfer Responses"], rates["trinfer"])
    rows.append(["trinfer Responses / chat (median of per-stream pairs; goal >= 0.85)", dialects, "", "", ""])
    messages = paired_ratio(per_round(rates["trinfer Messages"], rounds), per_round(rates["trinfer"], rounds))
    rows.append(["Messages / chat completions (median of per-round ratios; goal >= 0.85)", messages, "", "", ""])
    return table(
        f"P2 streaming relay (SSE content chunks/s, one stream of {TOKENS:,} tokens; goal >= 20,000)",
        ["target", "median chunks/s", "min", "max", "streams"],
        rows,
    )
