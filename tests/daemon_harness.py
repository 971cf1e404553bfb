"""Run a whole trinfer daemon inside a test, on real sockets, and talk to it with the real ``openai`` SDK.

In-process (the test's own nursery, so the autojump clock drives every timeout)::

    async with running_daemon(mock_config(token_delay_ms=10)) as d:
        async with d.client() as client:                  # openai.AsyncOpenAI, max_retries=0
            reply = await client.chat.completions.create(model="mock-echo", messages=[...])
        d.backend_status("mock")["completed"]             # MockBackend counters
        d.admission("mock").active                        # AdmissionStatistics
        await d.admin_get("/admin/status")                # httpx.Response

``config`` is the dict a TOML file would parse into (or a `proxy.config.Config`); both listeners go to port 0
on 127.0.0.1 unless the dict sets ``server.host``/``port``/``admin_port`` (a `Config` always gets port 0).
``running_daemon`` yields once the daemon is ready (``wait_ready=False``: as soon as the admin listener is
bound), stops it gracefully on exit, and raises a startup failure as `proxy.daemon.StartupError` itself.

As a real process (for signals and exit codes)::

    async with daemon_process("serve", "--backend", "mock") as proc:
        ...  # proc.base_url, proc.admin_url, proc.process, proc.stderr_text()
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import openai
import trio

from adapters.backend import Backend
from proxy.admission import AdmissionStatistics
from proxy.config import Config, config_from_mapping
from proxy.daemon import Daemon
from proxy.routing import BackendHandle

MOCK_MODEL = "mock-echo"
#: The key `keyed_config` configures and `RunningDaemon.client` sends by default.
TEST_KEY = "sk-test-harness-key-0123456789"


def mock_config(
    *,
    models: tuple[str, ...] = (MOCK_MODEL,),
    server: Mapping[str, Any] | None = None,
    active: int = 4,
    queue: int = 10,
    **options: Any,
) -> dict[str, Any]:
    """A config dict with one mock backend named ``mock``; ``options`` are the mock's own keys."""
    backend = {"name": "mock", "kind": "mock", "models": list(models), "active": active, "queue": queue, **options}
    return {"server": dict(server or {}), "backends": [backend]}


def keyed_config(config: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """``config`` with ``server.api_keys`` set (default: `TEST_KEY`)."""
    server = {**config.get("server", {}), "api_keys": list(keys or (TEST_KEY,))}
    return {**config, "server": server}


def test_config(config: Config | Mapping[str, Any]) -> Config:
    """A validated `Config`, listeners on port 0 and loopback unless the dict chose (see module docstring)."""
    if isinstance(config, Config):
        return replace(config, server=replace(config.server, port=0, admin_port=0))
    server = {"host": "127.0.0.1", "port": 0, "admin_port": 0, **config.get("server", {})}
    return config_from_mapping({**config, "server": server})


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite the name


@dataclass
class RunningDaemon:
    """A daemon running in the test's nursery; see the module docstring."""

    daemon: Daemon
    api_key: str

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (the inference listener), for ``openai`` clients."""
        assert self.daemon.inference_url is not None, "inference listener not bound (yet)"
        return f"{self.daemon.inference_url}/v1"

    @property
    def inference_url(self) -> str:
        assert self.daemon.inference_url is not None, "inference listener not bound (yet)"
        return self.daemon.inference_url

    @property
    def admin_url(self) -> str:
        assert self.daemon.admin_url is not None
        return self.daemon.admin_url

    @property
    def inference_port(self) -> int:
        return int(self.inference_url.rsplit(":", 1)[1])

    @property
    def admin_port(self) -> int:
        return int(self.admin_url.rsplit(":", 1)[1])

    def handle(self, name: str) -> BackendHandle:
        """The configured backend called ``name``: its `Backend`, admission queue and breaker."""
        for handle in self.daemon.router.handles:
            if handle.name == name:
                return handle
        raise KeyError(name)

    @property
    def backends(self) -> dict[str, Backend]:
        """Backend name -> the `Backend` instance serving it (e.g. a `MockBackend`), in priority order."""
        return {handle.name: handle.backend for handle in self.daemon.router.handles}

    def backend_status(self, name: str = "mock") -> dict[str, Any]:
        """``backend.status()`` (a MockBackend's started/completed/cancelled/failed/active counters)."""
        return self.handle(name).backend.status()

    def admission(self, name: str = "mock") -> AdmissionStatistics:
        """The admission statistics of one backend."""
        return self.handle(name).admission.statistics()

    def request_stop(self) -> None:
        """Begin the graceful stop, as SIGINT/SIGTERM does."""
        self.daemon.request_stop()

    def client(self, api_key: str | None = None, **kwargs: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` for this daemon (``max_retries=0``); use it as ``async with``."""
        return openai_client(self.base_url, api_key or self.api_key, **kwargs)

    def http(self, *, admin: bool = False, api_key: str | None = None) -> httpx.AsyncClient:
        """A raw httpx client on the inference (or admin) listener, sending the key; ``async with`` it."""
        key = api_key if api_key is not None else self.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.admin_url if admin else self.inference_url, headers=headers)

    async def admin_get(self, path: str) -> httpx.Response:
        async with self.http(admin=True) as client:
            return await client.get(path)


def openai_client(base_url: str, api_key: str = "unused", **kwargs: Any) -> openai.AsyncOpenAI:
    """``openai.AsyncOpenAI(base_url=..., api_key=..., max_retries=0)``, safe on the autojump clock.

    The SDK computes its platform header in a worker thread on its first request. On the autojump clock a
    thread hop leaves every task blocked, so virtual time jumps to the next deadline (often the test's
    ``fail_after``) before the thread returns. The value is computed here, synchronously, instead.
    """
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, **kwargs)
    client._platform = _sdk_platform()
    return client


@functools.cache
def _sdk_platform() -> Any:
    from openai._base_client import get_platform

    return get_platform()


@asynccontextmanager
async def running_daemon(
    config: Config | Mapping[str, Any], *, wait_ready: bool = True
) -> AsyncIterator[RunningDaemon]:
    """Run a daemon for ``config`` in a nursery owned by this context (see the module docstring).

    A startup failure (boot error, ``ready_timeout_s``) is raised from here as `proxy.daemon.StartupError`.
    """
    cfg = test_config(config)
    daemon = Daemon(cfg)
    key = cfg.api_keys[0] if cfg.api_keys else "unused"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            if wait_ready:
                await daemon.wait_ready()
            yield RunningDaemon(daemon, key)
            daemon.request_stop()
    except BaseExceptionGroup as group:
        raise _sole_error(group) from None


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside (nested) single-exception groups, so tests see the error itself."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    return leaves[0] if len(leaves) == 1 else group


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], *, poll_s: float = 0.001) -> None:
    """Poll ``predicate`` until it is true (guard the caller with ``trio.fail_after``)."""
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await trio.sleep(poll_s)


# --- a real daemon process ----------------------------------------------------------------------------

_READY = re.compile(r"ready: inference listening on (\S+)")
_ADMIN = re.compile(r"admin listening on (\S+)")


@dataclass
class DaemonProcess:
    """A ``python -m proxy`` child process; ``lines`` collects its stderr as it arrives."""

    process: trio.Process
    lines: list[str] = field(default_factory=list)
    admin_url: str | None = None
    inference_url: str | None = None
    exited: trio.Event = field(default_factory=trio.Event)

    @property
    def base_url(self) -> str:
        assert self.inference_url is not None
        return f"{self.inference_url}/v1"

    def stderr_text(self) -> str:
        return "\n".join(self.lines)

    def send_signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def wait(self) -> int:
        """Wait for the process to exit and all of its stderr to be read; its exit status."""
        code = await self.process.wait()
        await self.exited.wait()
        return code

    async def wait_for_line(self, pattern: str) -> str:
        """The first stderr line matching ``pattern`` (waits for it; guard with ``trio.fail_after``)."""
        regex = re.compile(pattern)
        while True:
            for line in self.lines:
                if regex.search(line):
                    return line
            if self.exited.is_set():
                raise AssertionError(f"process exited without logging {pattern!r}:\n{self.stderr_text()}")
            await trio.sleep(0.01)


def process_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a daemon process: no inherited TRINFER_* variables, unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRINFER_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@asynccontextmanager
async def daemon_process(
    *args: str, env: Mapping[str, str] | None = None, wait_ready: bool = True
) -> AsyncIterator[DaemonProcess]:
    """Start ``python -m proxy ARGS`` (ports 0 unless given); yields once it logged "ready" (by default).

    On exit a still-running process gets SIGKILL. Stderr lines are collected in ``proc.lines``.
    """
    argv = list(args)
    if argv and argv[0] == "serve":
        if "--port" not in argv:
            argv += ["--port", "0"]
        if "--admin-port" not in argv:
            argv += ["--admin-port", "0"]
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "proxy", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=process_env(env),
    )
    proc = DaemonProcess(process)

    async def read_stderr() -> None:
        assert process.stderr is not None
        buffer = b""
        try:
            async for data in process.stderr:
                buffer += data
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace")
                    proc.lines.append(line)
                    if (m := _ADMIN.search(line)) is not None:
                        proc.admin_url = m.group(1)
                    if (m := _READY.search(line)) is not None:
                        proc.inference_url = m.group(1)
            if buffer:
                proc.lines.append(buffer.decode("utf-8", "replace"))
        finally:
            proc.exited.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stderr)
            if wait_ready:
                await proc.wait_for_line(_READY.pattern)
            yield proc
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
        if process.stderr is not None:
            await process.stderr.aclose()
