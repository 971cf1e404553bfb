"""Admission as a client sees it: a full queue is a 429 at once, a long wait a 503, and the line is FIFO."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon, wait_until

SLOW: list[Any] = [{"role": "user", "content": "a b c d e f g h i j"}]  # 10 tokens: 10 s at 1 s each


async def test_full_queue_is_429_queue_full_with_retry_after_at_once(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=1, token_delay_ms=1000)
    with trio.fail_after(60):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:
            for _ in range(2):  # one running, one queued
                nursery.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=SLOW))
            await wait_until(lambda: d.admission().queued == 1)
            asked_at = trio.current_time()
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model=MOCK_MODEL, messages=SLOW)
            assert trio.current_time() == asked_at  # refused without waiting, not even virtual time
            assert caught.value.code == "queue_full"
            assert caught.value.response.headers["retry-after"] == "1"
            assert d.admission().rejected_total == 1
    assert d.backend_status()["completed"] == 2


async def test_waiting_longer_than_queue_timeout_is_503(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=5, token_delay_ms=1000, server={"queue_timeout_s": 3})
    with trio.fail_after(60):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=SLOW))
            await wait_until(lambda: d.admission().active == 1)
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model=MOCK_MODEL, messages=SLOW)
            assert caught.value.status_code == 503
            assert caught.value.code == "queue_timeout"
            stats = d.admission()
            assert (stats.queued, stats.timed_out_total, stats.active) == (0, 1, 1)
    assert d.backend_status()["started"] == 1


async def test_queued_requests_are_served_in_arrival_order(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=3, token_delay_ms=1000)
    finished: list[str] = []
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:

            async def ask(word: str) -> None:
                messages: list[Any] = [{"role": "user", "content": word}]
                reply = await client.chat.completions.create(model=MOCK_MODEL, messages=messages)
                finished.append(reply.choices[0].message.content or "")

            for position, word in enumerate(["first", "second", "third", "fourth"]):
                nursery.start_soon(ask, word)
                await wait_until(lambda n=position: d.admission().queued + d.admission().active == n + 1)
    assert finished == ["first", "second", "third", "fourth"]
