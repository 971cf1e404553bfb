"""Routing by model id over backends in priority order (lower first), skipping unready ones and open breakers.

The breaker: 3 backend-caused failures within 60 s open it for 30 s; then one trial request decides.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import openai
import pytest
import trio

from adapters import Done, Event, ResolvedV2, StopReason, Text, Usage
from adapters.mock import MockBackend
from tests.daemon_harness import RunningDaemon, running_daemon

HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def two_backends(primary: dict[str, Any] | None = None) -> dict[str, Any]:
    """``secondary`` is listed first but has the higher priority number, so ``primary`` is tried first."""
    return {
        "backends": [
            {"name": "secondary", "kind": "mock", "models": ["shared"], "priority": 5},
            {
                "name": "primary",
                "kind": "mock",
                "models": ["shared", "only-primary"],
                "priority": 1,
                **(primary or {}),
            },
        ]
    }


def started(d: RunningDaemon) -> tuple[int, int]:
    return d.backend_status("primary")["started"], d.backend_status("secondary")["started"]


async def breaker_state(d: RunningDaemon, name: str) -> str:
    status = (await d.admin_get("/admin/status")).json()
    (entry,) = [b for b in status["backends"] if b["name"] == name]
    state: str = entry["breaker"]["state"]
    return state


async def test_lower_priority_number_is_tried_first() -> None:
    with trio.fail_after(10):
        async with running_daemon(two_backends()) as d, d.client() as client:
            for _ in range(3):
                await client.chat.completions.create(model="shared", messages=HELLO)
            assert started(d) == (3, 0)
            models = await client.models.list()
    assert [m.id for m in models.data] == ["shared", "only-primary"]


async def test_a_backend_that_is_not_ready_is_skipped() -> None:
    with trio.fail_after(10):
        async with running_daemon(two_backends()) as d, d.client() as client:
            d.backends["primary"].ready = lambda: False  # type: ignore[method-assign]
            reply = await client.chat.completions.create(model="shared", messages=HELLO)
            assert reply.choices[0].message.content == "hello"
            assert started(d) == (0, 1)
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="only-primary", messages=HELLO)
    assert caught.value.status_code == 503
    assert caught.value.code == "backend_unavailable"


async def test_three_failures_open_the_breaker_then_one_trial_decides(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(300):
        async with running_daemon(two_backends({"fail": "pre-stream"})) as d, d.client() as client:
            for _ in range(3):
                with pytest.raises(openai.InternalServerError):
                    await client.chat.completions.create(model="shared", messages=HELLO)
            assert await breaker_state(d, "primary") == "open"
            # Open: the failing backend is skipped, the next one serves.
            reply = await client.chat.completions.create(model="shared", messages=HELLO)
            assert reply.choices[0].message.content == "hello"
            assert started(d) == (3, 1)
            # A model only the failing backend serves gets 503 with a Retry-After while it is open.
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="only-primary", messages=HELLO)
            assert caught.value.status_code == 503
            assert int(caught.value.response.headers["retry-after"]) >= 1

            # Past open_s (30 s); not exactly 30 s, when the server closes the client's idle keep-alive
            # connection (KEEP_ALIVE_S) at the same virtual instant the client would reuse it.
            await trio.sleep(31)
            assert await breaker_state(d, "primary") == "half_open"
            # The trial fails: open again for a full period.
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="shared", messages=HELLO)
            assert started(d) == (4, 1)
            assert await breaker_state(d, "primary") == "open"

            await trio.sleep(31)
            primary = d.backends["primary"]
            assert isinstance(primary, MockBackend)
            primary.options = replace(primary.options, fail="none")  # the backend has recovered
            await client.chat.completions.create(model="shared", messages=HELLO)
            assert await breaker_state(d, "primary") == "closed"
            await client.chat.completions.create(model="shared", messages=HELLO)
            assert started(d) == (6, 1)


async def test_failures_spread_over_more_than_60_s_do_not_open_it(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(300):
        async with running_daemon(two_backends({"fail": "pre-stream"})) as d, d.client() as client:
            for _ in range(4):
                with pytest.raises(openai.InternalServerError):
                    await client.chat.completions.create(model="shared", messages=HELLO)
                await trio.sleep(31)  # never 3 failures within 60 s
            assert await breaker_state(d, "primary") == "closed"
            assert started(d) == (4, 0)


async def test_invalid_requests_never_count_against_a_backend() -> None:
    with trio.fail_after(10):
        async with running_daemon(two_backends({"embed_dim": 4})) as d, d.client() as client:
            for _ in range(5):  # the backend itself refuses: more dimensions than it has
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.embeddings.create(model="shared", input="a", dimensions=10)
                assert caught.value.param == "dimensions"
            assert await breaker_state(d, "primary") == "closed"
            await client.chat.completions.create(model="shared", messages=HELLO)
            assert started(d) == (1, 0)


async def test_a_backend_sending_after_the_consumer_left_is_not_counted_against_it() -> None:
    """A send into a closed event channel (the consumer finished at Done, or the client left while an
    upstream read was delivering) is the consumer gone, not a backend failure: three of them must not open
    the breaker of a backend that answered every request."""
    refused: list[str] = []

    async def sends_past_done(req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        await send.send(Text("hi"))
        await send.send(Done(StopReason.END, Usage(1, 1)))
        try:
            for _ in range(100):  # more than the channel holds: the consumer closes it after Done
                await send.send(Text("late"))
        except trio.BrokenResourceError:
            refused.append("refused")
            raise

    with trio.fail_after(10):
        async with running_daemon(two_backends()) as d, d.client() as client:
            d.backends["primary"].generate_v2 = sends_past_done  # type: ignore[method-assign]
            for _ in range(3):
                reply = await client.chat.completions.create(model="shared", messages=HELLO)
                assert reply.choices[0].message.content == "hi"
            assert refused == ["refused"] * 3
            assert await breaker_state(d, "primary") == "closed"
