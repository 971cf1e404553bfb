"""Profile trinfer under a benchmark's load with py-spy: ``python -m bench.profile P1|P2|P3|P8 [--seconds N]``.

Starts trinfer as P1 (mock, non-streaming, wrk c=16), P8 (``kind = "openai"`` in front of P8's mock upstream,
non-streaming, wrk c=16), P2 (mock, 20,000-token streams) or P3 (llamacpp,
128-token streams, one after the other; py-spy also samples the decode thread, idle time included) would, attaches
``py-spy record`` (from ``$PEERS/tools``, installed by bench/setup_peers.sh) for the duration of the load, and
prints where the samples fell: the functions with the most samples at the top of the stack (self) and the
trinfer/framework functions present in the most stacks (inclusive). The raw collapsed stacks are kept in the
work directory for flame graphs.
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
    parser.add_argument("which", choices=["P1", "P2", "P3", "P8"])
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="trinfer-profile-"))
    model = "smollm2" if args.which == "P3" else targets.MOCK_MODEL
    tokens = 128 if args.which == "P3" else 20_000
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
                ],
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
        if args.which in ("P1", "P8"):
            wrk.run(server.port, connections=16, duration_s=args.seconds, workdir=workdir)
        else:
            done = threading.Event()

            def load() -> None:
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": "Write a long story."}],
                    "stream": True,
                    "max_tokens": tokens,
                    "temperature": 0,
                }
                while not done.is_set():
                    with Connection(HOST, server.port) as conn:
                        conn.stream_chat("/v1/chat/completions", body, parse=False)

            thread = threading.Thread(target=load)
            thread.start()
            time.sleep(args.seconds)
            done.set()
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
    }[which]
    with targets.trinfer(workdir, backend) as t:
        yield t.server


if __name__ == "__main__":
    main()
