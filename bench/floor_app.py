"""The floor of trinfer's own stack: a bare quart-trio app on hypercorn that parses the body and answers.

It does the least an OpenAI-compatible endpoint can do on the same framework and server trinfer uses: read
and parse the JSON body, then return a fixed ``chat.completion`` - or, with ``"stream": true``, stream
``max_tokens`` fixed chunks as SSE and ``[DONE]``. No validation, routing, admission, backend, task or
channel. trinfer's overhead is measured as the distance to this floor.

    python -m bench.floor_app --port 8000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import AsyncIterator

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

app = QuartTrio("floor")

COMPLETION = {
    "id": "chatcmpl-floor",
    "object": "chat.completion",
    "created": 0,
    "model": "mock-echo",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello from the floor"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
}


def _chunk(content: str | None, finish: str | None, created: int) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {
        "id": "chatcmpl-floor",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "mock-echo",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


async def _stream(tokens: int) -> AsyncIterator[bytes]:
    created = int(time.time())
    for _ in range(tokens):
        yield _chunk("w ", None, created)
    yield _chunk(None, "stop", created)
    yield b"data: [DONE]\n\n"


@app.post("/v1/chat/completions")
async def chat_completions() -> Response:
    body = json.loads(await request.get_data())
    if body.get("stream"):
        response = Response(_stream(int(body.get("max_tokens") or 16)), mimetype="text/event-stream")
        response.timeout = None
        return response
    return Response(json.dumps(COMPLETION), mimetype="application/json")


@app.get("/health")
async def health() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    trio.run(serve, app, config)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
