"""The anthropic backend passes the backend conformance suite, against the fake Messages API on loopback
answering as the deterministic echo model (so exact usage, echo text and stop sequences can be checked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from adapters.anthropic_backend import AnthropicBackend
from adapters.backend import Backend
from tests.adapters.conformance import (
    ECHO_PROMPTS,
    SYSTEM_PROMPT,
    ConformanceProfile,
    checks_for,
    status_counter,
)

from .conftest import KEY_ENV, make_backend
from .echo_model import count_words, echo_reply
from .fake_upstream import DEFAULT_KEY, FakeMessagesAPI


def profile_for(fake: FakeMessagesAPI | None) -> ConformanceProfile:
    def unbooted() -> Backend:
        assert fake is not None
        return make_backend(fake)

    return ConformanceProfile(
        model="claude",
        prompts=ECHO_PROMPTS,
        make_unbooted=unbooted,
        exact_usage=True,
        # What upstream reported, passed on unchanged: the echo model counts the words it was sent.
        prompt_tokens=lambda texts: count_words(list(texts)),
        expected_reply=lambda prompt: prompt,
        deterministic=True,
        cancelled_generations=status_counter("cancelled"),
        timeout_s=20,
    )


@pytest.fixture
async def echo_fake(nursery: trio.Nursery) -> FakeMessagesAPI:
    server = FakeMessagesAPI(responder=echo_reply)
    await nursery.start(server.serve)
    return server


@pytest.fixture
async def echo_backend(echo_fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Backend]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(echo_fake)
    await backend.boot()
    yield backend
    await backend.stop(5)


@pytest.mark.parametrize("check", checks_for(profile_for(None)))
async def test_conformance(check: Any, echo_backend: AnthropicBackend, echo_fake: FakeMessagesAPI) -> None:
    await check(echo_backend, profile_for(echo_fake))
    # Whatever the check sent went upstream in the Messages API's shape (system prompt at the top level).
    assert all(r.body.get("system") == SYSTEM_PROMPT for r in echo_fake.requests)
