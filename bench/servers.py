"""Starting and stopping the servers under test as child processes pinned to one core, and reading their RSS.

Every server runs on core `SERVER_CORE` (``taskset``) and every load generator on `CLIENT_CORE`, so the two
never compete for a CPU. A `Server` waits until its readiness URL answers 200, records how long that took
(start-to-ready), and is stopped with SIGTERM (SIGKILL after a grace period). Its output goes to a log file
in the run's work directory, so a failed start can be diagnosed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .http1 import Connection

SERVER_CORE = "0"
CLIENT_CORE = "1"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def pinned(core: str, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


@dataclass
class Server:
    """A running server: its name, port, process, and how long it took to become ready."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    ready_s: float
    log_path: Path

    def rss_bytes(self) -> int:
        """Resident memory of the server's whole process tree (a launcher plus workers counts in full)."""
        return sum(_rss(pid) for pid in _tree(self.process.pid))

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server's whole process tree."""
        return sum(_cpu(pid) for pid in _tree(self.process.pid))

    @property
    def pid(self) -> int:
        return self.process.pid


def _tree(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return pids
    for child in children:
        pids += _tree(int(child))
    return pids


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the command name).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``GET path`` every 10 ms until it answers 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before it was ready")
        try:
            with Connection(HOST, port, timeout=2) as conn:
                if conn.request("GET", path, headers={"Connection": "close"}).status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"not ready on port {port} after {timeout} s")


@contextmanager
def running(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    ready_path: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    ready_port: int | None = None,
    timeout: float = 180.0,
    core: str = SERVER_CORE,
) -> Iterator[Server]:
    """Start ``argv`` pinned to ``core``; yield once ``ready_path`` answers 200 (on ``ready_port`` or ``port``)."""
    log_path = workdir / f"{name}.log"
    environment = {**os.environ, **(env or {})}
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            pinned(core, argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            start_new_session=True,
        )
        try:
            wait_ready(ready_port or port, ready_path, process, timeout)
            server = Server(name, port, process, time.perf_counter() - started, log_path)
            yield server
        except BaseException:
            print(f"--- {name} log ({log_path}):\n" + log_path.read_text(errors="replace")[-3000:])
            raise
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after ``grace`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
