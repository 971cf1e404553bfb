"""One HTTP listener: hypercorn's trio worker serving an ASGI app, started with ``nursery.start``.

`serve_listener` reports the bound URL through ``task_status`` (port 0 gives a free port) and returns once
``shutdown`` is set and hypercorn has closed its connections (idle ones at once, busy ones after
``graceful_timeout_s``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import hypercorn.trio
import trio
from hypercorn.config import Config as HypercornConfig

from .logs import get_logger

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

#: Idle keep-alive connections are closed after this long.
KEEP_ALIVE_S = 30.0


def bind_address(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_listener(
    app: ASGIApp,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    graceful_timeout_s: float,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown`` is set; ``task_status.started(url)`` once bound."""
    config = HypercornConfig()
    config.bind = [bind_address(host, port)]
    config.accesslog = None  # RequestMiddleware logs one line per request, with the request id
    config.errorlog = get_logger("hypercorn")
    config.graceful_timeout = graceful_timeout_s
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.include_server_header = False

    async def started_url(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await hypercorn.trio.serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started_url)
        task_status.started(binds[0])
