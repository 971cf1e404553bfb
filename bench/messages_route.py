"""The Anthropic Messages route (``POST /v1/messages``) in P1 and P2: the same mock, the same echo, another
dialect, so its rows show what the Messages encoding costs next to chat completions in the same run.

P1 sends `P1_BODY` with ``wrk`` exactly as chat's body is sent; P2 streams `TOKENS` tokens and counts the
``text_delta`` events (each Messages SSE event is an ``event:`` line plus a ``data:`` line) between the first and
the last, which the chat stream counts as ``delta.content`` chunks.
"""

from __future__ import annotations

from .http1 import EVENT_END, Connection, StreamResult
from .servers import HOST, Server

PATH = "/v1/messages"
#: P1's request: chat's prompt with the ``max_tokens`` the route requires (far above the echo's length).
P1_BODY: dict[str, object] = {
    "model": "mock-echo",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hello, how are you today?"}],
}
STREAMS_PER_ROUND = 3


def stream_message(conn: Connection, tokens: int) -> StreamResult:
    """One streamed Messages answer; ``done`` once ``message_stop`` arrived, a time per ``text_delta``."""
    body = {
        "model": "mock-echo",
        "max_tokens": tokens,
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
    }
    result = StreamResult(0, conn.send_request("POST", PATH, body))
    result.status, head = conn.read_head()
    pending = b""
    for piece, arrived in conn.body_pieces(head):
        pending += piece
        *events, pending = EVENT_END.split(pending)
        for event in events:
            result.events += 1
            if b'"text_delta"' in event:
                result.token_times.append(arrived)
            elif event.startswith(b"event: message_stop"):
                result.done = True
    return result


def measure_streams(server: Server, tokens: int) -> list[StreamResult]:
    """A warm-up stream, then `STREAMS_PER_ROUND` complete streams of ``tokens`` text deltas each."""
    results = []
    with Connection(HOST, server.port) as conn:
        stream_message(conn, tokens)
        for _ in range(STREAMS_PER_ROUND):
            result = stream_message(conn, tokens)
            if result.status != 200 or not result.done or len(result.token_times) != tokens:
                raise RuntimeError(f"incomplete Messages stream: {result.status} {len(result.token_times)} tokens")
            results.append(result)
    return results
