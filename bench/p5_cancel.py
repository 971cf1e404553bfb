"""P5 - cancellation latency: from a client's disconnect to the generation stopped and its slot free.

For trinfer (mock and llamacpp, streaming and non-streaming) the client disconnects, then polls the admin
listener's ``/admin/status`` (every 2 ms, on one keep-alive connection) until the backend's admission shows no
active generation: the slot is released only after the backend's ``generate`` (for llamacpp: its worker thread) has
returned, so that moment is "backend stopped + slot free". A peer server has no such status, so for every
target - trinfer included - the other measure is black-box: right after the disconnect, send a 1-token
request and time until its answer arrives; compared with the same request on an idle server, it shows whether
and when the cancelled generation let go of the model. Streaming disconnects happen after 3 content chunks,
non-streaming ones 5 token intervals after sending. The "token interval" column is the median gap between
tokens measured in the same run.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import targets
from .http1 import Connection
from .report import median, table
from .servers import HOST, Server

LONG = 512  # max_tokens of the request that gets cancelled: seconds of work if it is not stopped
MOCK_TOKEN_MS = 20
POLL_S = 0.002


@dataclass(frozen=True)
class Target:
    name: str
    model: str
    start: Callable[[Path], AbstractContextManager[tuple[Server, int | None]]]


def _body(model: str, *, stream: bool, max_tokens: int, i: int) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"Request {i}. Write a very long story about the sea. " * 3}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }


def _slot_active(admin: Connection) -> int:
    response = admin.request("GET", "/admin/status")
    return int(json.loads(response.body)["backends"][0]["queue"]["active"])


def _wait_slot_free(admin_port: int, since: float) -> float:
    """Poll every `POLL_S`: each poll costs the server CPU on the core its decode thread also needs, so
    polling flat out would slow down the very generation being timed (it doubled the llamacpp numbers)."""
    with Connection(HOST, admin_port) as admin:
        while _slot_active(admin):
            time.sleep(POLL_S)
        return time.perf_counter() - since


def _next_request(server: Server, model: str, i: int) -> float:
    """Seconds to answer a 1-token request (sent now) in full."""
    started = time.perf_counter()
    with Connection(HOST, server.port, timeout=300) as conn:
        response = conn.request("POST", "/v1/chat/completions", _body(model, stream=False, max_tokens=1, i=i))
    if response.status != 200:
        raise RuntimeError(f"{server.name}: follow-up request got {response.status}: {response.body[:200]!r}")
    return time.perf_counter() - started


def _token_interval(server: Server, model: str) -> float:
    with Connection(HOST, server.port, timeout=300) as conn:
        result = conn.stream_chat("/v1/chat/completions", _body(model, stream=True, max_tokens=64, i=0))
    gaps = [b - a for a, b in zip(result.token_times, result.token_times[1:], strict=False)]
    return median(gaps)


def _disconnect(server: Server, model: str, *, stream: bool, interval: float, i: int) -> float:
    """Start a long generation, disconnect mid-way; returns the moment of the disconnect."""
    conn = Connection(HOST, server.port, timeout=300)
    body = _body(model, stream=stream, max_tokens=LONG, i=i)
    if stream:
        result = conn.stream_chat("/v1/chat/completions", body, stop_after=3)
        if result.status != 200 or len(result.token_times) < 3:
            raise RuntimeError(f"{server.name}: stream failed: {result.status} {result.error}")
    else:
        conn.send_request("POST", "/v1/chat/completions", body)
        time.sleep(5 * interval)
    conn.close()
    return time.perf_counter()


@contextmanager
def _trinfer_mock(workdir: Path) -> Iterator[tuple[Server, int | None]]:
    backend = targets.mock_backend(token_delay_ms=MOCK_TOKEN_MS, active=1)
    with targets.trinfer(workdir, backend, name="trinfer-mock") as t:
        yield t.server, t.admin_port


@contextmanager
def _trinfer_llamacpp(workdir: Path) -> Iterator[tuple[Server, int | None]]:
    with targets.trinfer(
        workdir, targets.llamacpp_backend(targets.chat_model_path()), name="trinfer-llamacpp"
    ) as t:
        yield t.server, t.admin_port


@contextmanager
def _llamacpp_python(workdir: Path) -> Iterator[tuple[Server, int | None]]:
    with targets.llamacpp_python_server(workdir, targets.chat_model_path()) as server:
        yield server, None


def _llama_server(binary: Path) -> Callable[[Path], AbstractContextManager[tuple[Server, int | None]]]:
    @contextmanager
    def start(workdir: Path) -> Iterator[tuple[Server, int | None]]:
        with targets.llama_server(workdir, targets.chat_model_path(), binary) as server:
            yield server, None

    return start


def run(workdir: Path, *, rounds: int) -> str:
    contenders = [
        Target("trinfer mock", targets.MOCK_MODEL, _trinfer_mock),
        Target("trinfer llamacpp", "smollm2", _trinfer_llamacpp),
    ]
    if targets.llamacpp_server_available():
        contenders.append(Target("llama-cpp-python server", "smollm2", _llamacpp_python))
    binary = targets.llama_server_binary()
    if binary is not None:
        contenders.append(Target("llama.cpp llama-server", "smollm2", _llama_server(binary)))
    slot_free: dict[tuple[str, bool], list[float]] = defaultdict(list)
    next_answer: dict[tuple[str, bool], list[float]] = defaultdict(list)
    idle_answer: dict[str, list[float]] = defaultdict(list)
    intervals: dict[str, list[float]] = defaultdict(list)
    i = 1
    for round_index in range(rounds):
        for target in contenders:
            with target.start(workdir) as (server, admin_port):
                intervals[target.name].append(_token_interval(server, target.model))
                idle_answer[target.name].append(_next_request(server, target.model, i))
                for stream in (True, False):
                    i += 1
                    if admin_port is not None:
                        since = _disconnect(
                            server, target.model, stream=stream, interval=intervals[target.name][-1], i=i
                        )
                        slot_free[target.name, stream].append(_wait_slot_free(admin_port, since))
                        i += 1
                    since = _disconnect(
                        server, target.model, stream=stream, interval=intervals[target.name][-1], i=i
                    )
                    _next_request(server, target.model, i + 1)
                    next_answer[target.name, stream].append(time.perf_counter() - since)
                    i += 2
        print(
            f"  round {round_index + 1}: slot free ms "
            + ", ".join(
                f"{name} {'stream' if stream else 'plain'} {values[-1] * 1000:.1f}"
                for (name, stream), values in slot_free.items()
            ),
            flush=True,
        )
    rows = []
    for target in contenders:
        for stream in (True, False):
            key = (target.name, stream)
            rows.append(
                [
                    target.name,
                    "streaming" if stream else "non-streaming",
                    median(intervals[target.name]) * 1000,
                    median(slot_free[key]) * 1000 if slot_free[key] else float("nan"),
                    median(next_answer[key]) * 1000,
                    median(idle_answer[target.name]) * 1000,
                ]
            )
    return table(
        "P5 cancellation latency (medians, ms; goal: slot free within one token interval)",
        [
            "target",
            "request",
            "token interval",
            "disconnect -> slot free",
            "disconnect -> next answer",
            "next answer when idle",
        ],
        rows,
    )
