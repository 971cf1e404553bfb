"""`Services`: the small, explicit value of what the views use, built by the Daemon.

Views (chat, embeddings, the WebSocket route, the models list, the admin routes) are given this, never the
Daemon: they route and admit through ``router``, register in ``inflight`` (what the graceful stop drains),
read limits from ``server``, check keys with ``api_keys``, ask ``lifecycle`` whether the daemon is draining,
and take wall-clock timestamps (``created`` fields) from ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .auth import ApiKeys
from .config import ServerConfig
from .inflight import Inflight
from .lifecycle import Lifecycle
from .metrics import Metrics
from .routing import Router


@dataclass(frozen=True, slots=True, eq=False)
class Services:
    """What the views use; see the module docstring."""

    router: Router
    inflight: Inflight
    server: ServerConfig
    api_keys: ApiKeys
    lifecycle: Lifecycle
    #: The daemon's Prometheus series (`proxy.metrics`).
    metrics: Metrics
    #: Wall-clock seconds, for the ``created`` timestamps of responses.
    clock: Callable[[], float] = time.time
    #: The ``created`` of every model in ``/v1/models``: when the daemon was built.
    started_at: int = field(default_factory=lambda: int(time.time()))
