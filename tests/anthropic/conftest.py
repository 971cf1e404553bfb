"""Fixtures: a fake Messages API on a loopback port, and an `AnthropicBackend` (or a whole daemon with one)
against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from adapters.anthropic_backend import AnthropicBackend
from adapters.stream import open_event_stream
from adapters.types import Event, Resolved, ResolvedV2
from tests.daemon_harness import RunningDaemon, running_daemon

from .fake_upstream import DEFAULT_KEY, FakeMessagesAPI

KEY_ENV = "TRINFER_TEST_ANTHROPIC_KEY"
#: The model id clients ask for; the backend sends it upstream as `UPSTREAM_MODEL`.
MODEL = "claude"
UPSTREAM_MODEL = "claude-upstream-1"


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeMessagesAPI:
    server = FakeMessagesAPI()
    await nursery.start(server.serve)
    return server


def make_backend(fake: FakeMessagesAPI, **options: Any) -> AnthropicBackend:
    return AnthropicBackend.from_options(
        {
            "base_url": fake.base_url,
            "api_key_env": KEY_ENV,
            "model_map": {MODEL: UPSTREAM_MODEL},
            "max_tokens_default": 256,
            "timeout_s": 30,
            **options,
        }
    )


def daemon_config(fake: FakeMessagesAPI) -> dict[str, Any]:
    """A daemon with one ``anthropic`` backend, ``claude``, serving `MODEL` from ``fake``."""
    backend = {
        "name": "claude",
        "kind": "anthropic",
        "models": [MODEL],
        "model_map": {MODEL: UPSTREAM_MODEL},
        "api_key_env": KEY_ENV,
        "base_url": fake.base_url,
        "max_tokens_default": 512,
        "timeout_s": 30,
    }
    return {"server": {}, "backends": [backend]}


@asynccontextmanager
async def daemon_for(fake: FakeMessagesAPI) -> AsyncIterator[RunningDaemon]:
    """trinfer running `daemon_config` (the whole block under a 30 s guard; the key must be in `KEY_ENV`)."""
    with trio.fail_after(30):
        async with running_daemon(daemon_config(fake)) as daemon:
            yield daemon


@pytest.fixture
async def backend(fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AnthropicBackend]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    booted = make_backend(fake)
    await booted.boot()
    yield booted
    await booted.stop(5)


async def collect(backend: AnthropicBackend, req: ResolvedV2 | Resolved, *, guard_s: float = 10) -> list[Event]:
    """Run one generation to the end (through the owned event stream the daemon uses) and list its events."""
    events: list[Event] = []
    with trio.fail_after(guard_s):
        if isinstance(req, ResolvedV2):
            stream_cm = open_event_stream(lambda send: backend.generate_v2(req, send))
        else:
            stream_cm = open_event_stream(lambda send: backend.generate(req, send))
        async with stream_cm as stream:
            async for event in stream:
                events.append(event)
    return events


async def collect_failure(
    backend: AnthropicBackend, req: ResolvedV2, *, guard_s: float = 10
) -> tuple[list[Event], Exception]:
    """Run a generation that must fail; return the events that arrived before the failure, and the failure."""
    events: list[Event] = []
    with trio.fail_after(guard_s):
        try:
            async with open_event_stream(lambda send: backend.generate_v2(req, send)) as stream:
                async for event in stream:
                    events.append(event)
        except Exception as exc:
            return events, exc
    raise AssertionError(f"the generation did not fail; it sent {events}")
