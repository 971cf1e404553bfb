"""``GET /metrics``: known traffic through a real daemon, then a scrape parsed with prometheus_client's own
parser, and exact counts asserted.

Each cancellation phase and rejection reason is produced the way a client would produce it (leaving while
queued, before the first token, mid-stream, during a non-streaming wait; a full queue, a queue timeout, a
request while draining), on the autojump clock.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_harness import (
    MOCK_MODEL,
    RunningDaemon,
    keyed_config,
    mock_config,
    running_daemon,
    wait_until,
)
from tests.ws.wsclient import connect, create, until_terminal

MESSAGES: list[Any] = [{"role": "user", "content": "one two three"}]
CHAT = "/v1/chat/completions"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(d: RunningDaemon) -> Samples:
    response = await d.admin_get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples) -> set[str]:
    return {v for _, labels in samples for _, v in labels}


async def test_requests_tokens_and_latencies_are_counted_exactly(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=10)) as d, d.client() as client:
            prompt_tokens = 0
            for _ in range(3):
                reply = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
                assert reply.usage is not None
                prompt_tokens += reply.usage.prompt_tokens
            for _ in range(2):
                stream = await client.chat.completions.create(
                    model=MOCK_MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                )
                async for chunk in stream:
                    if chunk.usage is not None:
                        prompt_tokens += chunk.usage.prompt_tokens
            with pytest.raises(openai.NotFoundError):
                await client.chat.completions.create(model="no-such-model\nforged", messages=MESSAGES)
            await client.models.list()
            samples = await scrape(d)

    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="200") == 5
    assert value(samples, "trinfer_requests_total", route=CHAT, model="unknown", status="404") == 1
    assert value(samples, "trinfer_requests_total", route="/v1/models", model="none", status="200") == 1
    assert value(samples, "trinfer_request_duration_seconds_count", route=CHAT, model=MOCK_MODEL) == 5
    assert not any("no-such-model" in v for v in label_values(samples)), "a client string became a label"
    # Every answer is "one two three": three tokens, so one first token and two intervals each.
    assert value(samples, "trinfer_time_to_first_token_seconds_count", model=MOCK_MODEL) == 5
    assert value(samples, "trinfer_inter_token_latency_seconds_count", model=MOCK_MODEL) == 10
    assert value(samples, "trinfer_completion_tokens_total", model=MOCK_MODEL) == 15
    assert value(samples, "trinfer_prompt_tokens_total", model=MOCK_MODEL) == prompt_tokens > 0
    # With a 10 ms delay before each token (virtual time), every first token and interval is about 10 ms.
    assert value(samples, "trinfer_time_to_first_token_seconds_bucket", model=MOCK_MODEL, le="0.005") == 0
    assert value(samples, "trinfer_time_to_first_token_seconds_bucket", model=MOCK_MODEL, le="0.025") == 5
    assert value(samples, "trinfer_inter_token_latency_seconds_bucket", model=MOCK_MODEL, le="0.005") == 0
    assert value(samples, "trinfer_inter_token_latency_seconds_bucket", model=MOCK_MODEL, le="0.02") == 10
    assert value(samples, "trinfer_backend_ready", backend="mock") == 1
    assert value(samples, "trinfer_breaker_open", backend="mock") == 0
    assert value(samples, "trinfer_active_generations", backend="mock") == 0


async def test_each_cancellation_phase_is_counted(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=1, token_delay_ms=1000)
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client:
            # Mid-stream: the client closes after the first chunk.
            stream = await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES, stream=True)
            await stream.__anext__()
            await stream.close()
            await wait_until(lambda: d.admission().active == 0)

            # Before the first token of a stream, and during a non-streaming wait.
            for stream_flag in (True, False):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(
                        lambda flag=stream_flag: client.chat.completions.create(
                            model=MOCK_MODEL, messages=MESSAGES, stream=flag
                        )
                    )
                    await wait_until(lambda: d.backend_status()["active"] == 1)
                    if not stream_flag:
                        await trio.sleep(1.5)  # a token in
                    nursery.cancel_scope.cancel()
                await wait_until(lambda: d.admission().active == 0)

            # Queued: one request holds the slot, the next leaves the queue.
            async with trio.open_nursery() as holder:
                holder.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
                await wait_until(lambda: d.admission().active == 1)
                async with trio.open_nursery() as queued:
                    queued.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES))
                    await wait_until(lambda: d.admission().queued == 1)
                    samples = await scrape(d)
                    assert value(samples, "trinfer_queue_depth", backend="mock") == 1
                    assert value(samples, "trinfer_active_generations", backend="mock") == 1
                    queued.cancel_scope.cancel()
            samples = await scrape(d)

    for phase in ("queued", "before_first_token", "streaming", "non_streaming"):
        assert value(samples, "trinfer_cancelled_total", backend="mock", phase=phase) == 1, phase
    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="200") == 2
    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="499") == 3


async def test_each_rejection_reason_is_counted(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(active=1, queue=1, token_delay_ms=1000, server={"queue_timeout_s": 2})
    # The held generation (10 tokens, 10 s) outlasts the queue timeout, so the stop below drains while it runs.
    held = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as holder:
            holder.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=held))
            await wait_until(lambda: d.admission().active == 1)
            async with trio.open_nursery() as nursery:

                async def times_out() -> None:
                    with pytest.raises(openai.InternalServerError):
                        await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)

                nursery.start_soon(times_out)
                await wait_until(lambda: d.admission().queued == 1)
                with pytest.raises(openai.RateLimitError):
                    await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
                d.request_stop()
                async with d.http() as http:
                    refused = await http.post(CHAT, json={"model": MOCK_MODEL, "messages": MESSAGES})
                assert refused.status_code == 503
            samples = await scrape(d)  # (still draining: the held generation runs)

    assert value(samples, "trinfer_rejected_total", backend="mock", reason="queue_full") == 1
    assert value(samples, "trinfer_rejected_total", backend="mock", reason="queue_timeout") == 1
    assert value(samples, "trinfer_rejected_total", backend="none", reason="shutting_down") == 1
    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="429") == 1
    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="503") == 1


async def test_backend_failures_open_the_breaker_gauge(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(fail="pre-stream")) as d, d.client() as client:
            for _ in range(3):
                with pytest.raises(openai.APIStatusError):
                    await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
            samples = await scrape(d)
    assert value(samples, "trinfer_breaker_open", backend="mock") == 1
    assert value(samples, "trinfer_completion_tokens_total", model=MOCK_MODEL) == 0


async def test_websocket_requests_count_like_http_ones(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config()) as d:
            async with connect(d) as ws:
                await ws.send_message(create("a", "one two three"))
                frames = await until_terminal(ws, "a")
            assert frames["a"][-1]["type"] == "chat.completion.done"
            samples = await scrape(d)
    assert value(samples, "trinfer_requests_total", route="/v1/ws", model=MOCK_MODEL, status="200") == 1
    assert value(samples, "trinfer_time_to_first_token_seconds_count", model=MOCK_MODEL) == 1
    assert value(samples, "trinfer_completion_tokens_total", model=MOCK_MODEL) == 3


async def test_metrics_need_the_admin_key() -> None:
    async with running_daemon(keyed_config(mock_config())) as d:
        async with httpx.AsyncClient(base_url=d.admin_url) as anonymous:
            refused = await anonymous.get("/metrics")
        allowed = await d.admin_get("/metrics")
    assert refused.status_code == 401
    assert allowed.status_code == 200


async def test_metrics_off_records_nothing() -> None:
    async with running_daemon(mock_config(server={"metrics": False})) as d, d.client() as client:
        await client.chat.completions.create(model=MOCK_MODEL, messages=MESSAGES)
        samples = await scrape(d)
    assert value(samples, "trinfer_requests_total", route=CHAT, model=MOCK_MODEL, status="200") == 0
    assert value(samples, "trinfer_time_to_first_token_seconds_count", model=MOCK_MODEL) == 0
    assert value(samples, "trinfer_backend_ready", backend="mock") == 1  # gauges still read the backends


async def test_every_dialect_counts_the_same_way() -> None:
    """Responses (HTTP and its WebSocket), legacy completions and Anthropic Messages feed the same series."""
    import anthropic

    def responses_over_websocket(base_url: str) -> None:
        with (
            openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client,
            client.responses.connect(max_retries=0) as conn,
        ):
            conn.response.create(model=MOCK_MODEL, input="one two three")
            for event in conn:
                if event.type == "response.completed":
                    return
        raise AssertionError("the socket closed before response.completed")

    with trio.fail_after(60):
        async with running_daemon(mock_config()) as d, d.client() as client:
            await client.responses.create(model=MOCK_MODEL, input="one two three")
            await client.completions.create(model=MOCK_MODEL, prompt="one two three")
            base = d.inference_url
            async with anthropic.AsyncAnthropic(base_url=base, api_key="unused", max_retries=0) as claude:
                await claude.messages.create(
                    model=MOCK_MODEL, max_tokens=16, messages=[{"role": "user", "content": "one two three"}]
                )
            await trio.to_thread.run_sync(responses_over_websocket, d.base_url)
            samples = await scrape(d)

    for route in ("/v1/responses", "/v1/completions", "/v1/messages"):
        assert value(samples, "trinfer_requests_total", route=route, model=MOCK_MODEL, status="200") >= 1, route
    # /v1/responses counts twice: once over HTTP, once over its WebSocket.
    assert value(samples, "trinfer_requests_total", route="/v1/responses", model=MOCK_MODEL, status="200") == 2
    assert value(samples, "trinfer_time_to_first_token_seconds_count", model=MOCK_MODEL) == 4
    assert value(samples, "trinfer_completion_tokens_total", model=MOCK_MODEL) == 12
