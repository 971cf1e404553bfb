"""Threat: a client forges log lines or floods the log through values it chooses.

A model id, a request path (percent-decoded: ``%0a`` is a newline) or a WebSocket request id is written into the
request's log line. Defence: those values are escaped (control characters as ``\\xNN``) and capped where they
are logged, and the formatter escapes control characters in every message as a backstop. Checked on the log
records of an in-process daemon and on a real process's stderr.
"""

from __future__ import annotations

import logging
import signal
import sys

import httpx
import pytest
import trio

from proxy.log_values import MAX_LOGGED_CHARS, loggable
from proxy.logs import MAX_MESSAGE_CHARS, RedactingFormatter
from tests.daemon_harness import daemon_process, mock_config, running_daemon
from tests.ws.wsclient import connect, create, until_terminal

FORGED = "2026-12-01 10:00:00,000 INFO trinfer.http: GET /admin/status 200 1.0ms id=req_forged model=-"


def http_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name in ("trinfer.http", "trinfer.ws")]


async def test_a_model_id_or_path_with_a_newline_stays_on_its_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, d.http() as http:
            body = {"model": f"x\n{FORGED}", "messages": [{"role": "user", "content": "hi"}]}
            assert (await http.post("/v1/chat/completions", json=body)).status_code == 404
            assert (await http.get("/v1/models%0d%0a" + FORGED.replace(" ", "%20"))).status_code == 404
            assert (await http.get("/v1/models/a%1b%5b2Jb%e2%80%aeevil")).status_code == 404
    lines = http_lines(caplog)
    assert len(lines) == 3
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert lines[0].endswith(f"model=x\\x0a{FORGED}")
    assert "/v1/models\\x0d\\x0a2026-12-01" in lines[1]
    assert "a\\x1b[2Jb\\u202eevil" in lines[2]


async def test_a_huge_model_id_is_capped_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    huge = "m" * 500_000
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, d.http() as http:
            body = {"model": huge, "messages": [{"role": "user", "content": "hi"}]}
            assert (await http.post("/v1/chat/completions", json=body)).status_code == 404
    (line,) = http_lines(caplog)
    assert len(line) < 2 * MAX_LOGGED_CHARS + 100
    assert line.endswith(f"model={'m' * MAX_LOGGED_CHARS}...[{500_000 - MAX_LOGGED_CHARS} more chars]")


async def test_a_websocket_request_id_and_model_with_newlines_stay_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with trio.fail_after(30):
        async with running_daemon(mock_config(models=("mock-echo", "a\nb"))) as d, connect(d) as conn:
            await conn.send_message(create(f"r1\n{FORGED}", model="a\nb"))
            frames = await until_terminal(conn, f"r1\n{FORGED}")
    assert frames[f"r1\n{FORGED}"][-1]["type"] == "chat.completion.done"
    (line,) = [line for line in http_lines(caplog) if " r1" in line]
    assert "\n" not in line
    assert f"r1\\x0a{FORGED}" in line
    assert "model=a\\x0ab" in line


async def test_a_real_process_writes_one_line_per_request_whatever_the_client_sends() -> None:
    with trio.fail_after(60):
        async with daemon_process("serve", "--backend", "mock") as proc:
            assert proc.inference_url is not None
            async with httpx.AsyncClient(base_url=proc.inference_url) as http:
                body = {"model": f"x\n{FORGED}\n", "messages": [{"role": "user", "content": "hi"}]}
                assert (await http.post("/v1/chat/completions", json=body)).status_code == 404
                assert (await http.get("/v1/%0a" + FORGED.replace(" ", "%20"))).status_code == 404
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    assert not [line for line in proc.lines if line.startswith(FORGED)]
    assert len([line for line in proc.lines if "trinfer.http: " in line]) == 2


def test_the_formatter_keeps_any_message_on_one_line_and_tracebacks_whole() -> None:
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError("inside\nthe traceback")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "value %s", (f"a\n{FORGED}",), exc_info)
    first, *traceback = formatter.format(record).split("\n")
    assert first == f"ERROR value a\\x0a{FORGED}"
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-2:] == ["ValueError: inside", "the traceback"]
    long = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", ("z" * (MAX_MESSAGE_CHARS + 5),), None)
    assert formatter.format(long) == f"INFO {'z' * MAX_MESSAGE_CHARS}...[5 more chars]"


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("plain-model", "plain-model"),
        ("tab\there", "tab\\x09here"),
        ("back\\slash\\x0a", "back\\\\slash\\\\x0a"),  # a literal "\x0a" cannot pass for an escape
        ("del\x7fc1\x85ls\u2028ps\u2029", "del\\x7fc1\\x85ls\\u2028ps\\u2029"),
        ("bidi\u202e\u2066x\u200f", "bidi\\u202e\\u2066x\\u200f"),
        ("naïve-模型", "naïve-模型"),
        (12, "12"),
    ],
)
def test_loggable_escapes_what_could_break_or_disguise_a_line(value: object, logged: str) -> None:
    assert loggable(value) == logged
