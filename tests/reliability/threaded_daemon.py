"""A whole daemon on its own trio loop in a background thread, for synchronous clients (hypothesis, httpx).

Hypothesis drives a synchronous test function once per example; starting a daemon per example would cost more
than the example. This runs one real daemon (real hypercorn, real sockets, port 0) for a whole module and
stops it gracefully at the end::

    with threaded_daemon(mock_config(embed_dim=8)) as url:
        httpx.post(f"{url}/v1/chat/completions", json=...)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio

from proxy.daemon import Daemon
from tests.daemon_harness import test_config

START_TIMEOUT_S = 60


@contextmanager
def threaded_daemon(config: Mapping[str, Any]) -> Iterator[str]:
    """Run a daemon for ``config`` in a thread; yield its inference URL once ready; stop it on exit."""
    daemon = Daemon(test_config(config))
    started: queue.Queue[trio.lowlevel.TrioToken | BaseException] = queue.Queue()

    async def serve() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            await daemon.wait_ready()
            started.put(trio.lowlevel.current_trio_token())

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # handed to the test thread, which re-raises it
            started.put(exc)

    thread = threading.Thread(target=run, name="trinfer-daemon", daemon=True)
    thread.start()
    token = started.get(timeout=START_TIMEOUT_S)
    if isinstance(token, BaseException):
        raise token
    try:
        assert daemon.inference_url is not None
        yield daemon.inference_url
    finally:
        trio.from_thread.run_sync(daemon.request_stop, trio_token=token)
        thread.join(timeout=START_TIMEOUT_S)
        assert not thread.is_alive(), "the daemon did not stop"
