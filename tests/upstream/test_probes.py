"""The health probes while the daemon serves (``Backend.maintain``): an upstream whose ``GET /models`` answers
500, answers 200 with something that is no model list, makes the probe raise what no probe expects, or hangs
past ``read_timeout_s``. Each time the URL goes down (logged once), the other URL serves every request, the
probes go on, and the URL is back once its probe passes again. Scripted upstreams run in the test's own
nursery, so the autojump clock drives the probe interval and the read timeout."""

from __future__ import annotations

import logging

import pytest
import trio

from tests.daemon_harness import RunningDaemon, wait_until

from .processes import GATEWAY_MODEL
from .scripted import ScriptedUpstream, gateway, text_answer, url_status

MESSAGES = [{"role": "user", "content": "hi"}]
LOGGER = "trinfer.backend.openai"
NOT_A_LIST = "probe failed: the answer is not an OpenAI model list"


def records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level and text in r.getMessage()]


async def served_by_b_only(d: RunningDaemon, a: ScriptedUpstream, b: ScriptedUpstream, count: int = 4) -> None:
    """``count`` requests all answered, all by ``b``."""
    before_a, before_b = len(a.requests), len(b.requests)
    async with d.client() as client:
        for _ in range(count):
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "from b"
    assert (len(a.requests) - before_a, len(b.requests) - before_b) == (0, count)


async def probes_go_on(upstream: ScriptedUpstream, more: int = 3) -> None:
    target = upstream.probes + more
    await wait_until(lambda: upstream.probes >= target)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, None, "probe failed: HTTP 500"),
        # a web server that answers 200 to anything
        (200, b"<html><body>Welcome to nginx!</body></html>", NOT_A_LIST),
        (200, b'{"object": "list"}', NOT_A_LIST),
        (200, b"", NOT_A_LIST),
    ],
    ids=["500", "html", "json-without-data", "empty"],
)
async def test_a_failing_probe_takes_the_url_out_until_it_passes_again(
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
    upstream_a: ScriptedUpstream,
    upstream_b: ScriptedUpstream,
    status: int,
    body: bytes | None,
    reason: str,
) -> None:
    upstream_b.reply(*[text_answer("from ", "b")] * 4)
    with trio.fail_after(60):
        async with gateway(upstream_a, upstream_b, health_interval_s=1) as d:
            assert url_status(d, 0)["healthy"] is True
            caplog.set_level(logging.INFO, LOGGER)
            caplog.clear()
            upstream_a.probe_status, upstream_a.probe_body = status, body
            await wait_until(lambda: not url_status(d, 0)["healthy"])
            assert url_status(d, 0)["last_error"] == reason
            assert url_status(d, 0)["down_since"] is not None
            await probes_go_on(upstream_a)
            await served_by_b_only(d, upstream_a, upstream_b)
            assert d.handle("fleet").backend.ready()
            # One line for going down, however many probes failed; none at ERROR (nothing unexpected happened).
            assert len(records(caplog, logging.WARNING, "is down")) == 1
            assert records(caplog, logging.ERROR, "") == []
            upstream_a.probe_status, upstream_a.probe_body = 200, None
            await wait_until(lambda: url_status(d, 0)["healthy"])
            assert url_status(d, 0)["down_since"] is None
            assert len(records(caplog, logging.INFO, "is healthy")) == 1
            async with d.client() as client:
                reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "ok"  # a's default answer: it serves again


async def test_a_probe_that_raises_what_no_probe_expects_is_logged_once_and_the_probes_go_on(
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
    upstream_a: ScriptedUpstream,
    upstream_b: ScriptedUpstream,
) -> None:
    upstream_b.reply(*[text_answer("from ", "b")] * 4)
    nested = b"[" * 100_000  # json.loads raises RecursionError, which is not a ValueError
    with trio.fail_after(60):
        async with gateway(upstream_a, upstream_b, health_interval_s=1) as d:
            upstream_a.probe_body = nested
            await wait_until(lambda: not url_status(d, 0)["healthy"])
            assert url_status(d, 0)["last_error"] == "probe failed: unexpected RecursionError"
            await probes_go_on(upstream_a)
            await served_by_b_only(d, upstream_a, upstream_b)
            crashes = records(caplog, logging.ERROR, "its health probe raised RecursionError")
            assert len(crashes) == 1
            assert crashes[0].exc_info is not None
            assert len(records(caplog, logging.WARNING, "is down")) == 1
            # The probes went on: a fixed upstream is back...
            upstream_a.probe_body = None
            await wait_until(lambda: url_status(d, 0)["healthy"])
            # ... and the same failure, when it comes back, is logged again (once).
            upstream_a.probe_body = nested
            await wait_until(lambda: not url_status(d, 0)["healthy"])
            await probes_go_on(upstream_a)
            assert len(records(caplog, logging.ERROR, "its health probe raised RecursionError")) == 2
            assert d.handle("fleet").backend.ready()


async def test_a_probe_that_hangs_past_read_timeout_s_takes_the_url_out_and_the_probes_go_on(
    autojump_clock: trio.abc.Clock,
    caplog: pytest.LogCaptureFixture,
    upstream_a: ScriptedUpstream,
    upstream_b: ScriptedUpstream,
) -> None:
    upstream_b.reply(*[text_answer("from ", "b")] * 4)
    with trio.fail_after(120):
        async with gateway(upstream_a, upstream_b, health_interval_s=1, read_timeout_s=10) as d:
            upstream_a.probe_hang = True
            start = trio.current_time()
            await wait_until(lambda: not url_status(d, 0)["healthy"])
            assert trio.current_time() - start >= 10  # slow is not down: it had read_timeout_s to answer
            assert url_status(d, 0)["last_error"] == "probe failed: no bytes within read_timeout_s"
            assert upstream_a.disconnects >= 1  # the probe let go of its connection
            await probes_go_on(upstream_a, 2)
            await served_by_b_only(d, upstream_a, upstream_b)
            assert len(records(caplog, logging.WARNING, "is down")) == 1
            assert records(caplog, logging.ERROR, "") == []
            upstream_a.probe_hang = False
            await wait_until(lambda: url_status(d, 0)["healthy"])


async def test_with_every_probe_failing_the_backend_is_not_ready_and_comes_back_by_itself(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    with trio.fail_after(60):
        async with gateway(upstream_a, health_interval_s=1) as d, d.client() as client:
            upstream_a.probe_body = b"[" * 100_000
            await wait_until(lambda: not d.handle("fleet").backend.ready())
            await probes_go_on(upstream_a)
            upstream_a.probe_body = None
            await wait_until(lambda: d.handle("fleet").backend.ready())
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "ok"
