"""Real upstream servers for the ``openai`` backend's tests: trinfer mock processes, and a closed port.

`UpstreamServer` is a ``python -m proxy serve --config FILE`` child process serving one mock backend named
``mock`` (the options are the mock's own keys: ``token_delay_ms``, ``fail``, ``embed_dim``...). It is started
synchronously (so session-scoped fixtures can share one across tests) and stopped with SIGKILL, the way a
crashed machine disappears. ``active()`` reads the upstream's own ``/admin/status``: how many generations its
mock is running, which is what the cancellation tests watch.

The gateway under test (trinfer with ``kind = "openai"``) runs in the test's own trio run, via
`tests.daemon_harness.running_daemon`, on the real clock: an autojump clock would jump while the upstream
process works.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.daemon_harness import process_env

UPSTREAM_MODEL = "mock-echo"
GATEWAY_MODEL = "fleet-model"
_READY = re.compile(r"ready: inference listening on (\S+)")
_ADMIN = re.compile(r"admin listening on (\S+)")
START_TIMEOUT_S = 60.0


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers, booleans and arrays are TOML too


class UpstreamServer:
    """A trinfer process with one mock backend (see the module docstring)."""

    def __init__(
        self,
        *,
        port: int = 0,
        models: tuple[str, ...] = (UPSTREAM_MODEL,),
        api_keys: tuple[str, ...] = (),
        **options: Any,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="trinfer-upstream-")
        lines = ["[server]", 'host = "127.0.0.1"', f"port = {port}", "admin_port = 0", "stop_timeout_s = 1"]
        if api_keys:
            lines.append(f"api_keys = {_toml(list(api_keys))}")
        lines += ["[[backends]]", 'name = "mock"', 'kind = "mock"', f"models = {_toml(list(models))}"]
        lines += ["active = 64", "queue = 256"]
        lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
        config = Path(self._dir.name) / "upstream.toml"
        config.write_text("\n".join(lines) + "\n")
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=process_env(),
            text=True,
        )
        self.url = self.admin_url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self.kill()
            raise RuntimeError("upstream trinfer did not become ready:\n" + "\n".join(self.lines))

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if (m := _ADMIN.search(line)) is not None:
                self.admin_url = m.group(1)
            if (m := _READY.search(line)) is not None:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what goes in ``base_urls``."""
        return f"{self.url}/v1"

    def status(self) -> dict[str, Any]:
        """The upstream's /admin/status (blocking; call it through `active` from trio code)."""
        reply = httpx.get(f"{self.admin_url}/admin/status", timeout=10)
        reply.raise_for_status()
        body: dict[str, Any] = reply.json()
        return body

    async def counters(self) -> dict[str, int]:
        """The upstream mock's started / completed / cancelled / failed / active counters, from its status."""
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"{self.admin_url}/admin/status", timeout=10)
        reply.raise_for_status()
        details: dict[str, int] = reply.json()["backends"][0]["details"]
        return details

    async def active(self) -> int:
        """Generations the upstream's mock is running right now."""
        return (await self.counters())["active"]

    def kill(self) -> None:
        """SIGKILL, as a machine that dies; waits for the process to be gone."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)

    def close(self) -> None:
        self.kill()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self._dir.cleanup()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def closed_port_url() -> str:
    """A loopback base URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"


def gateway_config(
    base_urls: list[str], *, server: Mapping[str, Any] | None = None, active: int = 16, **options: Any
) -> dict[str, Any]:
    """A config dict for `running_daemon`: one ``openai`` backend named ``fleet`` serving `GATEWAY_MODEL`."""
    backend = {
        "name": "fleet",
        "kind": "openai",
        "models": [GATEWAY_MODEL],
        "active": active,
        "queue": 64,
        "base_urls": base_urls,
        "upstream_model": UPSTREAM_MODEL,
        "connect_timeout_s": 2,
        "health_interval_s": 0.2,
        **options,
    }
    return {"server": {"ready_timeout_s": 30, "stop_timeout_s": 2, **(server or {})}, "backends": [backend]}
