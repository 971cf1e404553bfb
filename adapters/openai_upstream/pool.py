"""The base URLs of one ``openai`` backend: health, outstanding requests, least-outstanding choice, probes.

Theory of operation. Each base URL has its own `client.Connections` (its keep-alive HTTP/1.1 connections)
and a small mutable state: healthy or down (since when, and why), and how many requests it has outstanding.

    event                                   state change
    boot                                    every URL starts down ("not probed yet")
    probe ``GET {base}/models`` -> 2xx and   healthy (logged when it was down)
        a model list
    probe fails (any status, any error,      down (logged when it was healthy)
        a body that is no model list)
    a request finds it unfit (`Failure`)     down; the request may move on (see `errors`)

`pick` chooses, among the healthy URLs a request has not tried yet, the one with the fewest outstanding
requests; ties go round-robin, so light traffic still spreads. Probes run per URL every
``health_interval_s``: at boot (`probe_until_healthy`, which returns once one URL passed) and then for as long
as the backend serves (`keep_probing`, run by the daemon through ``Backend.maintain``). Times are taken from
``trio.current_time()`` for durations and from the wall clock only for the ``down_since`` shown to operators.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from .client import CLOSE_TIMEOUT_S, TRANSPORT_ERRORS, Connections, Endpoint, Timeouts, UpstreamResponse
from .errors import transport_failure
from .options import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S

log = logging.getLogger("trinfer.backend.openai")

NOT_PROBED = "not probed yet"
#: The most of a probe's answer (``GET {base}/models``) that is read: a long model list fits, a runaway body not.
MAX_PROBE_BODY = 8 * 1024 * 1024


@dataclass(eq=False)
class UpstreamURL:
    """One base URL, its connection pool (``transport``) and its state. ``headers`` carry the key."""

    base: str
    transport: Connections
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: Per-request bounds in seconds (see `client.Timeouts`).
    timeouts: Timeouts = field(
        default_factory=lambda: Timeouts(DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S)
    )
    healthy: bool = False
    down_since: float | None = field(default_factory=time.time)
    outstanding: int = 0
    last_error: str | None = NOT_PROBED
    requests: int = 0
    #: The last unexpected exception a probe raised (its ``last_error``), so that it is logged once.
    probe_crash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._endpoint = Endpoint(self.base, self.headers)

    async def send(
        self, method: str, path: str, body: bytes | None = None, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> UpstreamResponse:
        """One request on this URL's pool; the response's body is still to be read, and must be closed.

        Raises one of `TRANSPORT_ERRORS` when the request fails before the answer's headers.
        """
        head = self._endpoint.prepare(method, path, headers)
        return await self.transport.request(head, body, self.timeouts)

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

    def note_refused_key(self, url: UpstreamURL, reason: str) -> None:
        """Record that ``url`` refused the configured key (401/403): logged when it starts, not per request."""
        if url.last_error != reason:
            log.warning("upstream %s: %s", url.base, reason)
        url.last_error = reason

    async def probe(self, url: UpstreamURL) -> bool:
        """``GET {base}/models``: mark ``url`` healthy when it answers 2xx with a model list, down otherwise;
        True when it passed.

        Bounded like any request to the URL: ``connect_timeout_s`` to connect, ``read_timeout_s`` of silence.
        A server that is busy generating may answer its probe late (llama-cpp-python serialises even
        ``/models`` behind its model lock): slow is not down. A probe never raises (but `trio.Cancelled`):
        whatever it runs into, the probing goes on. Something no probe should meet (a bug here or in a
        library, such as the parser's ``RecursionError`` on absurdly nested JSON) is logged once, with its
        traceback, while it keeps happening, and keeps the URL down: nobody can vouch for it.
        """
        try:
            reason = await _probe_once(url)
        except Exception as exc:
            reason = f"probe failed: unexpected {type(exc).__name__}"
            if url.probe_crash != reason:
                log.error("upstream %s: its health probe raised %s", url.base, type(exc).__name__, exc_info=True)
            url.probe_crash = reason
        else:
            url.probe_crash = None
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


async def _probe_once(url: UpstreamURL) -> str | None:
    """One ``GET {base}/models``: None when it passed, else why not (for ``last_error``)."""
    try:
        response = await url.send("GET", "/models")
        try:
            if not 200 <= response.status_code < 300:
                return f"probe failed: HTTP {response.status_code}"
            body = await _read_up_to(response, MAX_PROBE_BODY)
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await response.aclose()
    except TRANSPORT_ERRORS as exc:
        return f"probe failed: {transport_failure(exc).reason}"
    return None if _is_model_list(body) else "probe failed: the answer is not an OpenAI model list"


async def _read_up_to(response: UpstreamResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body (more is cut off, and then cannot parse as a model list)."""
    data = bytearray()
    async for piece in response.aiter_bytes():
        data += piece
        if len(data) > limit:
            break
    return bytes(data)


def _is_model_list(body: bytes) -> bool:
    """True for an OpenAI model list, ``{"object": "list", "data": [...]}`` (only ``data`` is required).

    A web server that answers 200 to anything (a misrouted URL, a login page) is not an upstream.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("data"), list)
