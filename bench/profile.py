"""Profile trinfer under a benchmark's load with py-spy: ``python -m bench.profile P1|P2|P3|P7|P8 [--seconds N]``.

Starts trinfer as P1 (mock, non-streaming, wrk c=16), P8 (``kind = "openai"`` in front of P8's mock upstream,
non-streaming, wrk c=16), P2 (mock, 20,000-token streams), P3 (llamacpp, 128-token streams, one after the
other) or P7 (llamacpp with ``parallel = 8``, 8 clients streaming 64 tokens each over and over) would, attaches
``py-spy record`` (from ``$PEERS/tools``, installed by bench/setup_peers.sh) for the duration of the load, and
prints where the samples fell: the functions with the most samples at the top of the stack (self) and the
trinfer/framework functions present in the most stacks (inclusive). For P3 and P7 every thread is sampled,
idle time and native frames included, so llama.cpp's share of the decode thread and the event loop's share of
the model's core show. The raw collapsed stacks are kept in the work directory for flame graphs.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import p8_gateway, targets, wrk
from .http1 import Connection
from .servers import CLIENT_CORE, HOST, Server, pinned

PY_SPY = targets.PEERS / "tools/bin/py-spy"
INTERESTING = ("proxy/", "compat/", "adapters/", "quart", "hypercorn", "h11", "trio/", "werkzeug", "json")
INTERESTING += ("httpx", "httpcore")
INTERESTING += ("llama_",)  # llama.cpp's native frames (P7 samples them)


def summarize(collapsed: Path, top: int = 25) -> str:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            if any(part in frame for part in INTERESTING):
                inclusive[frame] += count
    out = [f"{total} samples", "", "self (top of stack):"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in self_counts.most_common(top)]
    out += ["", "inclusive (trinfer, framework and server frames):"]
    out += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["P1", "P2", "P3", "P7", "P8"])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections for P1 and P8 (default 16)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="trinfer-profile-"))
    local = args.which in ("P3", "P7")
    model = "smollm2" if local else targets.MOCK_MODEL
    tokens = {"P3": 128, "P7": 64}.get(args.which, 20_000)
    clients = 8 if args.which == "P7" else 1
    extra = ["--threads", "--idle", "--native"] if local else []
    collapsed = workdir / f"{args.which}.collapsed.txt"
    with _profiled(args.which, workdir) as server:
        spy = subprocess.Popen(
            pinned(
                CLIENT_CORE,
                [
                    str(PY_SPY),
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--duration",
                    str(args.seconds),
                    "--pid",
                    str(server.pid),
                    "--output",
                    str(collapsed),
                    *extra,
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        if args.which in ("P1", "P8"):
            wrk.run(server.port, connections=args.connections, duration_s=args.seconds, workdir=workdir)
        else:
            done = threading.Event()

            def load() -> None:
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": "Write a long story."}],
                    "stream": True,
                    "max_tokens": tokens,
                    "temperature": 0,
                    **({"logit_bias": {"2": -100}} if local else {}),  # SmolLM2's end of turn: full length
                }
                while not done.is_set():
                    with Connection(HOST, server.port) as conn:
                        conn.stream_chat("/v1/chat/completions", body, parse=False)

            threads = [threading.Thread(target=load) for _ in range(clients)]
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            done.set()
            for thread in threads:
                thread.join()
        spy.wait()
    print(f"# py-spy profile of trinfer under {args.which} load ({args.seconds} s), raw stacks: {collapsed}\n")
    print(summarize(collapsed))


@contextmanager
def _profiled(which: str, workdir: Path) -> Iterator[Server]:
    """The trinfer process to profile under ``which``'s load (for P8: the gateway, its upstream running too)."""
    if which == "P8":
        with p8_gateway.upstream(workdir) as up, p8_gateway.trinfer_gateway(up.port)(workdir) as gateway:
            yield gateway
        return
    backend = {
        "P1": targets.mock_backend(),
        "P2": targets.mock_backend(reply=["w "] * 20_000),
        "P3": targets.llamacpp_backend(targets.chat_model_path()),
        "P7": {**targets.llamacpp_backend(targets.chat_model_path()), "parallel": 8, "queue": 16},
    }[which]
    with targets.trinfer(workdir, backend) as t:
        yield t.server


if __name__ == "__main__":
    main()
