"""Upstream trinfer processes shared by the tests of one session (each takes a second or two to start), and
scripted upstreams for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from .processes import UpstreamServer
from .scripted import ScriptedUpstream


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[UpstreamServer]:
    """A fast mock upstream that echoes, calls tools, and embeds (8 dimensions)."""
    server = UpstreamServer(embed_dim=8)
    yield server
    server.close()


@pytest.fixture(scope="session")
def slow_upstream() -> Iterator[UpstreamServer]:
    """A mock upstream that waits 500 ms before each token: long enough, even on a busy machine, to catch a
    request in any phase."""
    server = UpstreamServer(token_delay_ms=500)
    yield server
    server.close()


@pytest.fixture
async def upstream_a(nursery: trio.Nursery) -> ScriptedUpstream:
    """A scripted upstream in the test's own nursery (the autojump clock drives its timeouts)."""
    server = ScriptedUpstream()
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def upstream_b(nursery: trio.Nursery) -> ScriptedUpstream:
    """A second scripted upstream, for failover."""
    server = ScriptedUpstream()
    await nursery.start(server.serve)
    return server
