"""The floor of a gateway on trinfer's fixed stack: forward one route's request to an upstream, answer as it did.

It does the least any OpenAI-compatible gateway on hypercorn + trio + trinfer's HTTP client must do: read the
request body, send it to the upstream over a kept-alive connection (trinfer's own `Connections` and `Endpoint`
from ``adapters/openai_upstream/client.py``, with the same settings and timeouts as its ``openai`` backend,
so the client hop costs what it costs trinfer, whatever that client does next), and return the upstream's status,
content type and body unchanged: a JSON body read whole and passed on, an SSE body (``text/event-stream``)
relayed chunk by chunk as the upstream's reads deliver it. No parsing, translation, auth, admission,
logging or metrics. P8 measures trinfer's ``openai`` backend against this floor, so what trinfer adds over
it is trinfer's own work and not the price of the stack.

Two variants answer ``POST /v1/chat/completions`` (and ``GET /health`` for readiness):

- the default, a quart-trio app like ``bench/floor_app.py`` (trinfer's framework);
- ``--raw``: the same forwarding as a bare ASGI application on hypercorn, without quart, so the difference
  between the two is quart's share of the floor and the rest is hypercorn plus the client hop.

    python -m bench.floor_gateway --port 8000 --upstream http://127.0.0.1:8001 [--raw]
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

from adapters.openai_upstream.backend import KEEPALIVE_CONNECTIONS, KEEPALIVE_EXPIRY_S
from adapters.openai_upstream.client import Connections, Endpoint, Timeouts, UpstreamResponse
from adapters.openai_upstream.options import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S

CHAT_PATH = "/v1/chat/completions"
HEALTH = b'{"status":"ok"}'


class Upstream:
    """One base URL's connections and its prepared chat target: the whole client side of the floor."""

    def __init__(self, base: str) -> None:
        self._pool = Connections(
            ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),  # plain http: never used
            max_keepalive_connections=KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        self._endpoint = Endpoint(base, {})
        self._timeouts = Timeouts(
            connect=DEFAULT_CONNECT_TIMEOUT_S, read=DEFAULT_READ_TIMEOUT_S, write=DEFAULT_READ_TIMEOUT_S
        )

    async def post(self, body: bytes, content_type: bytes) -> UpstreamResponse:
        """POST ``body`` to the upstream; the response's body is still to be read (and it must be closed)."""
        head = self._endpoint.prepare("POST", CHAT_PATH, ((b"Content-Type", content_type),))
        return await self._pool.request(head, body, self._timeouts)


def content_type(response: UpstreamResponse) -> bytes:
    return response.headers.get("content-type", "application/octet-stream").encode("latin-1")


def is_sse(kind: bytes) -> bool:
    return kind.startswith(b"text/event-stream")


async def read_whole(response: UpstreamResponse) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def relay(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """The upstream's body as its reads deliver it; closing the response (also when the client leaves early)
    closes the upstream connection if the body was not read to its end."""
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    finally:
        await response.aclose()


def quart_app(upstream: Upstream) -> QuartTrio:
    app = QuartTrio("floor-gateway")

    @app.post(CHAT_PATH)
    async def chat_completions() -> Response:
        answer = await upstream.post(
            await request.get_data(cache=False, as_text=False, parse_form_data=False),
            request.headers.get("Content-Type", "application/json").encode("latin-1"),
        )
        kind = content_type(answer)
        if is_sse(kind):
            response = Response(relay(answer), status=answer.status_code, content_type=kind.decode("latin-1"))
            response.timeout = None
            return response
        return Response(await read_whole(answer), status=answer.status_code, content_type=kind.decode("latin-1"))

    @app.get("/health")
    async def health() -> Response:
        return Response(HEALTH, mimetype="application/json")

    return app


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def raw_app(upstream: Upstream) -> Callable[[dict[str, Any], Receive, Send], Awaitable[None]]:
    """The same forwarding as a bare ASGI application: hypercorn calls it directly."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == CHAT_PATH and scope["method"] == "POST":
            await forward(scope, receive, send)
        elif scope["path"] == "/health":
            await answer(send, 200, b"application/json", HEALTH)
        else:
            await answer(send, 404, b"text/plain", b"not found")

    async def forward(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        kind = b"application/json"
        for name, value in scope["headers"]:
            if name == b"content-type":
                kind = value
        response = await upstream.post(b"".join(parts), kind)
        kind = content_type(response)
        if not is_sse(kind):
            await answer(send, response.status_code, kind, await read_whole(response))
            return
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": [(b"content-type", kind)]}
        )
        try:
            async for chunk in response.aiter_bytes():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            await response.aclose()
        await send({"type": "http.response.body", "body": b""})

    return app


async def answer(send: Send, status: int, kind: bytes, body: bytes) -> None:
    headers = [(b"content-type", kind), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL, e.g. http://127.0.0.1:8001")
    parser.add_argument("--raw", action="store_true", help="a bare ASGI application instead of quart-trio")
    args = parser.parse_args()
    upstream = Upstream(args.upstream)
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    app = raw_app(upstream) if args.raw else quart_app(upstream)
    trio.run(serve, app, config)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
