"""Log levels an operator can alert on: ERROR only for bugs, never for the 5xx the server gives on purpose.

A ``/ready`` 503 while loading or draining is a probe answer (INFO); a ``queue_timeout`` or
``server_shutting_down`` 503 is expected under load or during a stop (WARNING); a bug is a 500 logged at
ERROR with its traceback and request id.
"""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest
import trio

from adapters.types import ResolvedV2
from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon, wait_until

SLOW: list[Any] = [{"role": "user", "content": "a b c d e f g h i j"}]


def request_lines(caplog: pytest.LogCaptureFixture, status: str) -> list[logging.LogRecord]:
    """The one-per-request log lines (``trinfer.http``) whose status field is ``status``."""
    return [r for r in caplog.records if r.name == "trinfer.http" and r.getMessage().split()[2:3] == [status]]


async def test_ready_probe_503_while_loading_and_draining_is_info(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(60):
        async with running_daemon(mock_config(boot_delay_ms=5000), wait_ready=False) as d:
            loading = await d.admin_get("/ready")
            await d.daemon.wait_ready()
            d.request_stop()
            draining = await d.admin_get("/ready")
    assert (loading.status_code, draining.status_code) == (503, 503)
    lines = request_lines(caplog, "503")
    assert [r.getMessage().split()[:2] for r in lines] == [["GET", "/ready"], ["GET", "/ready"]]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_queue_timeout_and_shutting_down_503s_are_warnings_not_errors(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    config = mock_config(active=1, queue=5, token_delay_ms=1000, server={"queue_timeout_s": 3})
    with trio.fail_after(60):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:
            nursery.start_soon(lambda: client.chat.completions.create(model=MOCK_MODEL, messages=SLOW))
            await wait_until(lambda: d.admission().active == 1)
            with pytest.raises(openai.InternalServerError) as timed_out:
                await client.chat.completions.create(model=MOCK_MODEL, messages=SLOW)
            d.request_stop()
            with pytest.raises(openai.InternalServerError) as shutting_down:
                await client.chat.completions.create(model=MOCK_MODEL, messages=SLOW)
    assert (timed_out.value.code, shutting_down.value.code) == ("queue_timeout", "server_shutting_down")
    lines = request_lines(caplog, "503")
    assert len(lines) == 2
    assert all(r.getMessage().startswith("POST /v1/chat/completions 503") for r in lines)
    assert [r.levelno for r in lines] == [logging.WARNING, logging.WARNING]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_bug_is_the_only_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(req: ResolvedV2, send: Any) -> None:
        raise ZeroDivisionError("bug")

    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            d.backends["mock"].generate_v2 = broken  # type: ignore[method-assign]
            response = await http.post("/v1/chat/completions", json={"model": MOCK_MODEL, "messages": SLOW})
    request_id = response.headers["x-request-id"]
    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert request_id in errors[0].getMessage()
    assert errors[0].exc_info is not None and isinstance(errors[0].exc_info[1], ZeroDivisionError)
    (line,) = request_lines(caplog, "500")
    assert line.levelno == logging.WARNING
