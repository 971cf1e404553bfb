"""The mock passes the backend conformance suite: instant, paced (autojump clock), and without embeddings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import trio.testing

from adapters.backend import Backend
from adapters.mock import MockBackend, count_words

from .conformance import ECHO_PROMPTS, ConformanceProfile, checks_for, status_counter


def profile_for(options: Mapping[str, Any]) -> ConformanceProfile:
    """The mock is fully predictable: exact usage and prompt counts, echo text, counters in status()."""
    return ConformanceProfile(
        model="mock-echo",
        prompts=ECHO_PROMPTS,
        make_unbooted=lambda: MockBackend.from_options(options),
        exact_usage=True,
        prompt_tokens=count_words,
        expected_reply=lambda prompt: prompt,
        deterministic=True,
        cancelled_generations=status_counter("cancelled"),
    )


INSTANT = {"embed_dim": 16}
PACED = {"embed_dim": 8, "token_delay_ms": 25, "boot_delay_ms": 100}
NO_EMBED: dict[str, Any] = {}


async def booted(options: Mapping[str, Any]) -> AsyncIterator[Backend]:
    backend = MockBackend.from_options(options)
    await backend.boot()
    yield backend
    await backend.stop(1.0)


@pytest.fixture
async def instant_backend() -> AsyncIterator[Backend]:
    async for backend in booted(INSTANT):
        yield backend


@pytest.fixture
async def paced_backend() -> AsyncIterator[Backend]:
    async for backend in booted(PACED):
        yield backend


@pytest.fixture
async def no_embed_backend() -> AsyncIterator[Backend]:
    async for backend in booted(NO_EMBED):
        yield backend


@pytest.mark.parametrize("check", checks_for(profile_for(INSTANT)))
async def test_instant_mock(check: Any, instant_backend: Backend) -> None:
    await check(instant_backend, profile_for(INSTANT))


@pytest.mark.parametrize("check", checks_for(profile_for(PACED)))
async def test_paced_mock(check: Any, paced_backend: Backend, autojump_clock: trio.testing.MockClock) -> None:
    """Token and boot delays run on the autojump clock (the clock must be a test argument to be used)."""
    await check(paced_backend, profile_for(PACED))


@pytest.mark.parametrize("check", checks_for(profile_for(NO_EMBED)))
async def test_mock_without_embeddings(check: Any, no_embed_backend: Backend) -> None:
    await check(no_embed_backend, profile_for(NO_EMBED))
