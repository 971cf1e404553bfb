"""The P1 load generator: ``wrk`` (C, HTTP/1.1 keep-alive), pinned to the client core, parsed.

The same request body, connection count, duration and thread count for every target; ``--latency`` gives the
percentiles. Any non-2xx response or socket error makes the run invalid (reported, never averaged in).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .servers import CLIENT_CORE, HOST, pinned

CHAT_PATH = "/v1/chat/completions"
CHAT_BODY = {"model": "mock-echo", "messages": [{"role": "user", "content": "Hello, how are you today?"}]}
RESPONSES_PATH = "/v1/responses"
#: The chat body's question as a Responses ``input`` item list: the same message, one key renamed, so the two
#: rows compare the dialects and not the sizes of what they carry.
RESPONSES_BODY = {"model": "mock-echo", "input": [{"role": "user", "content": "Hello, how are you today?"}]}

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def available() -> bool:
    return shutil.which("wrk") is not None


def _script(workdir: Path, chat_body: dict[str, object]) -> Path:
    path = workdir / f"post_chat_{abs(hash(json.dumps(chat_body, sort_keys=True)))}.lua"
    body = json.dumps(chat_body).replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{body}'\nwrk.headers['Content-Type'] = 'application/json'\n"
    )
    return path


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run(
    port: int,
    *,
    connections: int,
    duration_s: float,
    workdir: Path,
    body: dict[str, object] | None = None,
    path: str = CHAT_PATH,
) -> WrkResult:
    """One wrk run POSTing ``body`` (default `CHAT_BODY`) to ``path`` (default ``/v1/chat/completions``)."""
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--latency",
        "--timeout",
        "30s",  # a slow response is a slow sample, not a dropped one
        "-s",
        str(_script(workdir, CHAT_BODY if body is None else body)),
        f"http://{HOST}:{port}{path}",
    ]
    out = subprocess.run(pinned(CLIENT_CORE, argv), capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rps is None or set(latency) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return WrkResult(float(rps.group(1)), _ms(latency["50"]), _ms(latency["99"]), int(total.group(1)), errors)
