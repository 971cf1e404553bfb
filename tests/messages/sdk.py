"""The real ``anthropic`` SDK pointed at a trinfer daemon, and the small helpers the Messages tests share."""

from __future__ import annotations

import functools
from typing import Any

import anthropic
import httpx

from tests.daemon_harness import RunningDaemon


def async_client(d: RunningDaemon, api_key: str | None = None, **kwargs: Any) -> anthropic.AsyncAnthropic:
    """``anthropic.AsyncAnthropic`` for the daemon (``max_retries=0``), safe on the autojump clock.

    Like the openai SDK, it computes its platform header in a worker thread on the first request; on the
    autojump clock virtual time would jump while that thread runs, so the value is computed here instead.
    """
    client = anthropic.AsyncAnthropic(
        base_url=d.inference_url, api_key=api_key or d.api_key, max_retries=0, **kwargs
    )
    client._platform = _platform()
    return client


def sync_client(d: RunningDaemon, api_key: str | None = None, **kwargs: Any) -> anthropic.Anthropic:
    """The blocking client (run its calls in a worker thread: the daemon shares the test's event loop)."""
    return anthropic.Anthropic(base_url=d.inference_url, api_key=api_key or d.api_key, max_retries=0, **kwargs)


@functools.cache
def _platform() -> Any:
    from anthropic._base_client import get_platform

    return get_platform()


def sse_events(raw: httpx.Response) -> list[tuple[str, str]]:
    """(event line, data line) of each event of a raw SSE body."""
    events = []
    for frame in raw.text.split("\n\n"):
        if frame:
            name, data = frame.split("\n")
            events.append((name.removeprefix("event: "), data.removeprefix("data: ")))
    return events
