"""The base URLs of one ``openai`` backend: health, outstanding requests, least-outstanding choice, probes.

Theory of operation. Each base URL has its own ``httpx.AsyncHTTPTransport`` (its own keep-alive connection
pool) and a small mutable state: healthy or down (since when, and why), and how many requests it has outstanding.

    event                                   state change
    boot                                    every URL starts down ("not probed yet")
    probe ``GET {base}/models`` -> 2xx       healthy (logged when it was down)
    probe fails (any status, any error)      down (logged when it was healthy)
    a request finds it unfit (`Failure`)     down; the request may move on (see `errors`)

`pick` chooses, among the healthy URLs a request has not tried yet, the one with the fewest outstanding
requests; ties go round-robin, so light traffic still spreads. Probes run per URL every
``health_interval_s``: at boot (`probe_until_healthy`, which returns once one URL passed) and then for as long
as the backend serves (`keep_probing`, run by the daemon through ``Backend.maintain``). Times are taken from
``trio.current_time()`` for durations and from the wall clock only for the ``down_since`` shown to operators.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from .errors import transport_failure

log = logging.getLogger("trinfer.backend.openai")

NOT_PROBED = "not probed yet"
#: Bound on closing a response (shielded: a cancelled probe or request still releases its connection).
CLOSE_TIMEOUT_S = 5.0


@dataclass(eq=False)
class UpstreamURL:
    """One base URL, its connection pool (``transport``) and its state. ``headers`` carry the key."""

    base: str
    transport: httpx.AsyncHTTPTransport
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: httpx's per-request timeout extension: connect, read, write, pool (seconds).
    timeout: Mapping[str, float] = field(default_factory=dict)
    healthy: bool = False
    down_since: float | None = field(default_factory=time.time)
    outstanding: int = 0
    last_error: str | None = NOT_PROBED
    requests: int = 0

    async def send(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One request on this URL's pool; the response's body is still to be read, and must be closed.

        Straight to the transport (httpx's one-method interface): a client's URL merging, cookie jar, auth
        and redirect machinery would cost more CPU per request than everything else the gateway does for
        it, and none of it applies to a fixed upstream.
        """
        request = httpx.Request(
            method,
            self.base + path,
            content=body,
            headers={**self.headers, **headers} if headers else self.headers,
            extensions={"timeout": dict(self.timeout)},
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    def status(self) -> dict[str, Any]:
        """This URL's entry in /admin/status (no key: the headers are never shown)."""
        return {
            "url": self.base,
            "healthy": self.healthy,
            "down_since": _iso(self.down_since),
            "outstanding": self.outstanding,
            "requests": self.requests,
            "last_error": self.last_error,
        }


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Pool:
    """The base URLs of one backend (see the module docstring)."""

    def __init__(self, urls: Sequence[UpstreamURL]) -> None:
        self.urls = tuple(urls)
        self._turn = 0

    def any_healthy(self) -> bool:
        return any(url.healthy for url in self.urls)

    def pick(self, tried: set[UpstreamURL]) -> UpstreamURL | None:
        """The healthy, untried URL with the fewest outstanding requests (ties round-robin), or None."""
        count = len(self.urls)
        start = self._turn
        self._turn = (self._turn + 1) % count
        best: UpstreamURL | None = None
        for offset in range(count):
            url = self.urls[(start + offset) % count]
            if url.healthy and url not in tried and (best is None or url.outstanding < best.outstanding):
                best = url
        return best

    def has_candidate(self, tried: set[UpstreamURL]) -> bool:
        """True when some healthy URL has not been tried yet."""
        return any(url.healthy and url not in tried for url in self.urls)

    @contextmanager
    def lease(self, url: UpstreamURL) -> Iterator[None]:
        """Count one outstanding request on ``url`` for the duration of the block."""
        url.outstanding += 1
        url.requests += 1
        try:
            yield
        finally:
            url.outstanding -= 1

    def mark_down(self, url: UpstreamURL, reason: str) -> None:
        url.last_error = reason
        if url.healthy:
            url.healthy = False
            url.down_since = time.time()
            log.warning("upstream %s is down: %s", url.base, reason)

    def mark_up(self, url: UpstreamURL) -> None:
        if url.last_error == NOT_PROBED:
            url.last_error = None
        if not url.healthy:
            url.healthy = True
            url.down_since = None
            log.info("upstream %s is healthy", url.base)

    def note_error(self, url: UpstreamURL, reason: str) -> None:
        """Record a failure that does not make ``url`` unfit (a read timeout, an in-band error)."""
        url.last_error = reason

    async def probe(self, url: UpstreamURL) -> bool:
        """``GET {base}/models``: mark ``url`` healthy on a 2xx, down otherwise; True when it passed.

        Bounded like any request to the URL: ``connect_timeout_s`` to connect, ``read_timeout_s`` of silence.
        A server that is busy generating may answer its probe late (llama-cpp-python serialises even
        ``/models`` behind its model lock): slow is not down.
        """
        reason: str | None = None
        try:
            response = await url.send("GET", "/models")
            try:
                await response.aread()
            finally:
                with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                    await response.aclose()
        except httpx.HTTPError as exc:
            reason = f"probe failed: {transport_failure(exc).reason}"
        else:
            if not 200 <= response.status_code < 300:
                reason = f"probe failed: HTTP {response.status_code}"
        if reason is None:
            self.mark_up(url)
            return True
        self.mark_down(url, reason)
        return False

    async def probe_until_healthy(self, interval_s: float) -> None:
        """Probe every URL each ``interval_s`` until one passes; return as soon as one has (boot)."""
        passed = trio.Event()

        async def until_passed(url: UpstreamURL) -> None:
            while True:
                if await self.probe(url):
                    passed.set()
                    return
                await trio.sleep(interval_s)

        async with trio.open_nursery() as nursery:
            for url in self.urls:
                nursery.start_soon(until_passed, url)
            await passed.wait()
            nursery.cancel_scope.cancel()

    async def keep_probing(self, interval_s: float) -> None:
        """Probe every URL each ``interval_s``, each URL in its own task, until cancelled."""
        async with trio.open_nursery() as nursery:
            for url in self.urls:
                nursery.start_soon(self._probe_loop, url, interval_s)

    async def _probe_loop(self, url: UpstreamURL, interval_s: float) -> None:
        while True:
            await self.probe(url)
            await trio.sleep(interval_s)

    def status(self) -> list[dict[str, Any]]:
        return [url.status() for url in self.urls]
