"""``examples/ws_chat.py``, run as a process against a real daemon: two prompts at once, one cancelled."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon

from .wsclient import ws_url

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ws_chat.py"
LONG = " ".join(f"word{i}" for i in range(40))


async def run_example(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, str(EXAMPLE), *args], capture_stdout=True, capture_stderr=True, check=False
    )


async def test_the_example_streams_two_prompts_and_cancels_one() -> None:
    config = keyed_config(mock_config(token_delay_ms=20))
    with trio.fail_after(60):
        async with running_daemon(config) as d:
            result = await run_example("--url", ws_url(d), "--api-key", TEST_KEY, "short and sweet", LONG)
            out = result.stdout.decode()
            assert result.returncode == 0, out + result.stderr.decode()
            lines = out.splitlines()
            assert (
                'first: done, finish_reason=stop, usage={"prompt_tokens": 3, "completion_tokens": 3, '
                '"total_tokens": 6, "prompt_tokens_details": {"cached_tokens": 0}, '
                '"completion_tokens_details": {"reasoning_tokens": 0}}: \'short and sweet\'' in lines
            )
            assert "second: cancel sent" in lines
            summary = next(line for line in lines if line.startswith("second: cancelled after "))
            partial = summary.split(": ", 2)[2].strip("'")
            assert partial and LONG.startswith(partial) and partial != LONG
            assert d.backend_status()["completed"] == 1
            assert d.backend_status()["cancelled"] == 1
            assert d.admission().active == 0


async def test_the_example_reports_a_refused_key() -> None:
    with trio.fail_after(60):
        async with running_daemon(keyed_config(mock_config())) as d:
            result = await run_example("--url", ws_url(d), "--api-key", "sk-wrong")
            assert result.returncode == 1
            assert "connection refused with HTTP 401" in result.stderr.decode()
            assert "invalid_api_key" in result.stderr.decode()
