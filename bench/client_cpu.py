"""Client-side CPU per request: trinfer's HTTP client against httpcore and h11, same run, same server.

Each client sends keep-alive POSTs of a small chat body to `bench.canned_server` (started here, as a child
process) and reads its small JSON answer; the time is the client process's CPU time (``time.process_time``)
per request, after a warm-up, the clients measured in turn for several rounds (A B C A B C ...) so a busy
machine moves all of them alike, and the median of the rounds reported. The clients:

- ``trinfer``: `adapters.openai_upstream.client` (``Connections`` + ``Endpoint``), as the backend uses it;
- ``httpcore``: one httpcore ``AsyncHTTPConnection`` kept alive (trio backend; httpcore comes with httpx),
  what the backend's client was built on before;
- ``h11``: h11 driven directly on a ``trio.SocketStream`` - the reference parser with no pool around it.

    python -m bench.client_cpu [REQUESTS [ROUNDS]]
"""

from __future__ import annotations

import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11
import httpcore
import trio

from adapters.openai_upstream.client import Connections, Endpoint, Timeouts

from .servers import free_port

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}'
PATH = "/v1/chat/completions"
HEADERS = ((b"Content-Type", b"application/json"), (b"Accept", b"application/json, text/event-stream"))
WARM_UP = 200
One = Callable[[], Awaitable[bytes]]


async def trinfer_client(port: int) -> One:
    pool = Connections(ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), max_keepalive_connections=8,
                       keepalive_expiry=4.0)  # fmt: skip
    endpoint = Endpoint(f"http://127.0.0.1:{port}", {"Authorization": "Bearer x"})
    timeouts = Timeouts(connect=5, read=300, write=300)

    async def one() -> bytes:
        response = await pool.request(endpoint.prepare("POST", PATH, HEADERS), BODY, timeouts)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    return one


async def httpcore_client(port: int) -> One:
    origin = httpcore.Origin(b"http", b"127.0.0.1", port)
    connection = httpcore.AsyncHTTPConnection(origin, keepalive_expiry=4.0)
    url = httpcore.URL(f"http://127.0.0.1:{port}{PATH}")
    extensions = {"timeout": {"connect": 5, "read": 300, "write": 300, "pool": 5}}
    headers = [(b"Host", b"127.0.0.1:%d" % port), (b"Authorization", b"Bearer x"), *HEADERS,
               (b"Content-Length", b"%d" % len(BODY))]  # fmt: skip

    async def one() -> bytes:
        request = httpcore.Request(b"POST", url, headers=headers, content=BODY, extensions=extensions)
        response = await connection.handle_async_request(request)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    return one


async def h11_client(port: int) -> One:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    connection = h11.Connection(h11.CLIENT)
    headers = [(b"Host", b"127.0.0.1:%d" % port), (b"Authorization", b"Bearer x"), *HEADERS,
               (b"Content-Length", b"%d" % len(BODY))]  # fmt: skip

    async def one() -> bytes:
        if connection.our_state is h11.DONE:
            connection.start_next_cycle()
        out = connection.send(h11.Request(method="POST", target=PATH, headers=headers))
        out = (out or b"") + (connection.send(h11.Data(data=BODY)) or b"")
        out += connection.send(h11.EndOfMessage()) or b""
        with trio.fail_after(300):
            await stream.send_all(out)
        body = []
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                with trio.fail_after(300):
                    connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(body)

    return one


CLIENTS = {"trinfer": trinfer_client, "httpcore": httpcore_client, "h11": h11_client}


async def measure(port: int, requests: int, rounds: int) -> None:
    cpu: dict[str, list[float]] = {name: [] for name in CLIENTS}
    for _ in range(rounds):
        for name, make in CLIENTS.items():
            one = await make(port)
            for _ in range(WARM_UP):
                await one()
            start = time.process_time()
            for _ in range(requests):
                await one()
            cpu[name].append((time.process_time() - start) / requests * 1e6)
            print(f"{name:9s} cpu {cpu[name][-1]:6.0f} us/req", flush=True)
    for name, samples in cpu.items():
        print(f"{name:9s} median cpu {statistics.median(samples):6.0f} us/req over {rounds} rounds")


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.canned_server", str(port)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        trio.run(measure, port, requests, rounds)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
