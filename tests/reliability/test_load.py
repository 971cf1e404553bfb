"""Load: 200 concurrent streaming clients against a mock backend with 4 slots and a queue of 10.

The contract under overload (DESIGN.md section 3): every request either streams its whole answer or is refused
at once with 429 ``queue_full`` and a ``Retry-After`` header; nothing waits beyond the queue, nothing hangs,
and when the burst is over the daemon is back where it started: no slot held, no request in flight, no task
left running, and resident memory near its baseline.

The mock paces its 9 tokens 60 ms apart, so a generation holds its slot for about half a second while the 200
clients arrive: the burst really overflows the queue. This test uses the real clock on purpose: it times
nothing out and asserts no duration, and the autojump clock cannot be used with 200 sockets in flight (virtual
time leaps to the next deadline whenever every task waits on the kernel, e.g. on a connect in the listen
backlog). The client is the real ``openai`` SDK over real sockets.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai
import trio

from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until
from tests.reliability.process_state import rss_bytes, task_count

CLIENTS = 200
ACTIVE = 4
QUEUE = 10
TEXT = "the quick brown fox jumps over the lazy dog"
MESSAGES = [{"role": "user", "content": TEXT}]
ROUNDS = 2
#: Generous: Python keeps freed memory in its arenas; what must not happen is growth per burst.
RSS_TOLERANCE = 48 * 1024 * 1024


@dataclass
class Outcomes:
    completed: int = 0
    rejected: int = 0


async def one_client(client: openai.AsyncOpenAI, outcomes: Outcomes) -> None:
    """Stream one answer; it must be whole, or the request must be a clean 429 (anything else fails the test)."""
    try:
        stream = await client.chat.completions.create(
            model=MOCK_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    except openai.RateLimitError as exc:
        assert exc.status_code == 429
        assert exc.code == "queue_full"
        assert exc.type == "rate_limit_error"
        assert int(exc.response.headers["retry-after"]) >= 1
        outcomes.rejected += 1
        return
    text: list[str] = []
    finish: list[str] = []
    usage = None
    async for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason is not None:
                finish.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert "".join(text) == TEXT
    assert finish == ["stop"]
    assert usage is not None and usage.completion_tokens == len(TEXT.split())
    outcomes.completed += 1


async def burst(d: RunningDaemon) -> Outcomes:
    """Run all clients at once; return what they saw. The SDK client (and its sockets) is closed after."""
    outcomes = Outcomes()
    async with d.client() as client, trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(one_client, client, outcomes)
    return outcomes


async def settled(d: RunningDaemon, tasks: int) -> None:
    """Wait until the daemon holds nothing: no slot, no queue entry, no request, no extra task."""
    await wait_until(lambda: d.admission().active == 0 and d.admission().queued == 0)
    await wait_until(lambda: len(d.daemon.inflight) == 0)
    await wait_until(lambda: task_count() == tasks)


async def test_200_streaming_clients_complete_whole_or_get_429_at_once() -> None:
    config = mock_config(active=ACTIVE, queue=QUEUE, token_delay_ms=60)
    with trio.fail_after(180):
        async with running_daemon(config) as d:
            idle_tasks = task_count()
            await burst(d)  # warm-up: imports, caches and arenas settle before the baseline
            await settled(d, idle_tasks)
            baseline_rss = rss_bytes()
            before = d.admission()
            totals = Outcomes()
            for _ in range(ROUNDS):
                outcomes = await burst(d)
                assert outcomes.completed + outcomes.rejected == CLIENTS
                # The burst overflowed the queue, and at least every slot and queue place was used.
                assert outcomes.rejected > 0
                assert outcomes.completed >= ACTIVE + QUEUE
                totals.completed += outcomes.completed
                totals.rejected += outcomes.rejected
                await settled(d, idle_tasks)
            after = d.admission()
            # The server's own accounting matches what the clients saw: nobody waited out the queue timeout.
            assert after.admitted_total - before.admitted_total == totals.completed
            assert after.rejected_total - before.rejected_total == totals.rejected
            assert after.timed_out_total == 0
            status = d.backend_status()
            assert status["active"] == 0
            assert status["cancelled"] == 0
            assert status["failed"] == 0
            assert status["started"] == status["completed"]
            assert rss_bytes() - baseline_rss < RSS_TOLERANCE
