"""``log_format = "json"``: a real daemon process writes one JSON object per line, the request line with its
structured fields, and no client value can break a line or forge one."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, daemon_process, wait_until

FORGED = 'x"\n2026-12-01 00:00:00 ERROR trinfer.http: forged {"level": "error"}'


def records(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        parsed.append(record)
    return parsed


@pytest.mark.parametrize("how", ["flag", "env"])
async def test_json_lines_carry_the_request_fields(how: str) -> None:
    args = ["serve", "--backend", "mock"]
    env: dict[str, str] = {}
    if how == "flag":
        args += ["--log-format", "json"]
    else:
        env["TRINFER_LOG_FORMAT"] = "json"
    with trio.fail_after(60):
        async with daemon_process(*args, env=env) as proc:
            async with openai.AsyncOpenAI(base_url=proc.base_url, api_key="unused", max_retries=0) as client:
                stream = await client.chat.completions.create(
                    model=MOCK_MODEL,
                    messages=[{"role": "user", "content": "one two three"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for _ in stream:
                    pass
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(
                        model=FORGED, messages=[{"role": "user", "content": "hi"}]
                    )
            await wait_until(lambda: sum('"route":"/v1/chat/completions"' in line for line in proc.lines) == 2)
            lines = list(proc.lines)

    logged = records(lines)
    assert {"timestamp", "level", "logger", "message"} <= set(logged[0])
    assert logged[0]["timestamp"].endswith("Z")
    chat = [r for r in logged if r.get("route") == "/v1/chat/completions"]
    ok, missing = chat
    assert ok["logger"] == "trinfer.http" and ok["level"] == "info"
    assert (ok["method"], ok["path"], ok["model"], ok["status"]) == (
        "POST",
        "/v1/chat/completions",
        MOCK_MODEL,
        200,
    )
    assert ok["request_id"].startswith("req_")
    assert ok["duration_ms"] >= ok["ttft_ms"] >= 0
    assert ok["completion_tokens"] == 3 and ok["prompt_tokens"] > 0
    assert ok["ended_by"] is None
    # The forged model id is one escaped value in one line; no record claims to be an error.
    assert missing["status"] == 404 and missing["ttft_ms"] is None and missing["completion_tokens"] is None
    assert "\n" not in missing["model"] and missing["model"].startswith('x"')
    assert not any(r["level"] == "error" for r in logged)
    assert sum("forged" in line for line in lines) == 1
