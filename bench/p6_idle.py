"""P6 - idle memory and start-to-ready: trinfer with the mock, beside the floor and LiteLLM.

Start-to-ready is from ``exec`` to the first 200 of the readiness URL (trinfer: ``/ready`` on the admin
listener, which turns 200 only once the inference listener is bound; the floor: ``/health``; LiteLLM:
``/health/liveliness``), polled every 10 ms. Idle RSS is the resident memory of the server's whole process
tree one second after it answered one request (imports and first-request caches included), no model loaded.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from . import targets
from .http1 import Connection
from .report import median, table
from .servers import HOST, Server
from .wrk import CHAT_BODY


@contextmanager
def _trinfer(workdir: Path) -> Iterator[Server]:
    with targets.trinfer(workdir, targets.mock_backend()) as t:
        yield t.server


def run(workdir: Path, *, rounds: int) -> str:
    contenders: dict[str, Callable[[Path], AbstractContextManager[Server]]] = {
        "quart-trio floor": targets.floor,
        "trinfer (mock)": _trinfer,
    }
    if targets.litellm_available():
        contenders["LiteLLM proxy"] = targets.litellm
    ready: dict[str, list[float]] = defaultdict(list)
    rss: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for name, start in contenders.items():
            with start(workdir) as server:
                with Connection(HOST, server.port) as conn:
                    assert conn.request("POST", "/v1/chat/completions", CHAT_BODY).status == 200
                time.sleep(1)
                ready[name].append(server.ready_s)
                rss[name].append(server.rss_bytes() / 2**20)
            print(f"  {name}: ready {ready[name][-1]:.2f} s, RSS {rss[name][-1]:.1f} MiB", flush=True)
    rows = [[name, median(ready[name]), median(rss[name]), len(ready[name])] for name in contenders]
    return table(
        "P6 idle memory and start-to-ready (medians)", ["target", "start-to-ready s", "idle RSS MiB", "runs"], rows
    )
