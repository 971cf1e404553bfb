"""``/health`` latency on both listeners while one client sends the largest allowed request body.

Run by hand (``PYTHONPATH=. python -m bench.big_body [--tree NAME=PATH ...] [--rounds N]``); results go to
docs/benchmarks.md. ``--tree`` names a trinfer source tree to run the daemon from (``git archive <commit> | tar
-x -C PATH``), the default being this one; with several, every round measures each tree in turn, each shape
in turn, so a noisy minute on a shared machine hits all of them alike, and the medians over rounds are
printed at the end. One daemon process per measurement (``serve --backend mock``, default ``max_body_bytes``
= 8 MiB) on loopback; the probing clients run in
this process, the big request comes from curl in a process of its own (sent from this one, it stalled the
probes' own event loop, so they measured the client rather than the server). Two bodies, each just under the
cap: one message whose content is ~7.9 MiB, and ~240,000 short messages. While the big request is being sent
and answered, a prober hits ``/health`` on both listeners back to back and a second client sends small chat
requests; it reports the worst and median probe latency and how many of each completed. A baseline with the
same probes and chats but no big request, measured in each round too, shows what the machine itself adds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.daemon_harness import MOCK_MODEL, DaemonProcess, daemon_process, openai_client

CAP = 8 * 1024 * 1024
#: How long the baseline (no big request) probes for.
BASELINE_S = 3.0


def big_content() -> bytes:
    words = " ".join(["word"] * ((CAP - 1024) // 5))
    return json.dumps(
        {"model": MOCK_MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": words}]}
    ).encode()


def many_messages() -> bytes:
    message = {"role": "user", "content": "hi"}
    count = (CAP - 1024) // len(json.dumps(message).encode() + b", ")
    return json.dumps({"model": MOCK_MODEL, "max_tokens": 1, "messages": [message] * count}).encode()


async def measure(name: str, body: bytes, tree: Path) -> dict[str, Any]:
    # ``python -m proxy`` puts its working directory first on sys.path: the daemon runs ``tree``'s code.
    here = Path.cwd()
    os.chdir(tree)
    try:
        async with daemon_process("serve", "--backend", "mock", env={"PYTHONPATH": str(tree)}) as d:
            return await _measure(d, name, body)
    finally:
        os.chdir(here)


async def _measure(d: DaemonProcess, name: str, body: bytes) -> dict[str, Any]:
    assert d.inference_url is not None and d.admin_url is not None
    latencies: dict[str, list[float]] = {"inference": [], "admin": []}
    chats = 0
    done = trio.Event()
    big_status = 0

    async def big() -> None:
        # From its own process (curl): sending 8 MiB from this one would stall this process's event loop,
        # and with it the probes, which would then measure the client instead of the server.
        nonlocal big_status
        with tempfile.NamedTemporaryFile(suffix=".json") as file:
            file.write(body)
            file.flush()
            sent = await trio.run_process(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json",
                 "--data-binary", f"@{file.name}", f"{d.inference_url}/v1/chat/completions"],
                capture_stdout=True,
            )  # fmt: skip
        big_status = int(sent.stdout)
        done.set()

    async def probe(which: str, url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while not done.is_set():
                started = time.perf_counter()
                assert (await http.get("/health")).status_code == 200
                latencies[which].append((time.perf_counter() - started) * 1000)
                await trio.sleep(0.005)

    async def chat() -> None:
        nonlocal chats
        async with openai_client(d.base_url) as client:
            while not done.is_set():
                await client.chat.completions.create(
                    model=MOCK_MODEL, messages=[{"role": "user", "content": "hi"}]
                )
                chats += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe, "inference", d.inference_url)
        nursery.start_soon(probe, "admin", d.admin_url)
        nursery.start_soon(chat)
        await trio.sleep(0.2)
        started = time.perf_counter()
        if body:
            nursery.start_soon(big)
        else:  # the baseline: the same probes and chats for a while, no big request (the machine's noise floor)
            await trio.sleep(BASELINE_S)
            done.set()
        await done.wait()
        elapsed = time.perf_counter() - started
    result = {
        "body": name,
        "bytes": len(body),
        "status": big_status,
        "big_request_s": round(elapsed, 2),
        "chats": chats,
    }
    for which, values in latencies.items():
        result[f"{which}_health_max_ms"] = round(max(values), 1)
        result[f"{which}_health_median_ms"] = round(statistics.median(values), 1)
        result[f"{which}_probes"] = len(values)
    return result


async def main(trees: dict[str, Path], rounds: int) -> None:
    bodies = (
        ("baseline: no big request", b""),
        ("one 7.9 MiB message", big_content()),
        ("~240k short messages", many_messages()),
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for round_index in range(rounds):
        for tree_name, tree in trees.items():
            for name, body in bodies:
                result = {"round": round_index, "tree": tree_name, **await measure(name, body, tree)}
                results[tree_name, name].append(result)
                print(json.dumps(result), flush=True)
    if rounds > 1 or len(trees) > 1:
        print("medians over rounds (worst /health ms is each round's max; median of those):")
        for (tree_name, name), runs in results.items():
            summary = {
                key: statistics.median(run[key] for run in runs)
                for key in runs[0]
                if key.endswith("_ms") or key in ("big_request_s", "chats")
            }
            print(json.dumps({"tree": tree_name, "body": name, "rounds": len(runs), **summary}))


def _tree(spec: str) -> tuple[str, Path]:
    name, _, path = spec.partition("=")
    return name, Path(path).resolve()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=_tree, default=[], help="NAME=PATH of a source tree")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    trio.run(main, dict(args.tree) or {"this tree": Path.cwd()}, args.rounds)
