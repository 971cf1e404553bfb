"""Threat: API keys leak through the logs (a wrong key a client sent, a key pasted into a prompt, headers).

Defence: nothing logs headers or bodies, and every log line goes through a redacting formatter that removes
configured keys, bearer tokens and Authorization values. Checked on a real process's stderr at debug level.
"""

from __future__ import annotations

import signal

import httpx
import trio

from proxy.logs import REDACTED, RedactingFormatter, redact
from tests.daemon_harness import daemon_process

REAL_KEY = "sk-real-key-5f0c1d2e3a4b"
WRONG_KEY = "sk-wrong-key-9a8b7c6d5e4f"


async def test_keys_never_reach_the_log() -> None:
    with trio.fail_after(60):
        async with daemon_process(
            "serve", "--backend", "mock", "--log-level", "debug", env={"TRINFER_API_KEYS": REAL_KEY}
        ) as proc:
            assert proc.inference_url is not None
            async with httpx.AsyncClient(base_url=proc.inference_url) as http:
                wrong = await http.get("/v1/models", headers={"Authorization": f"Bearer {WRONG_KEY}"})
                assert wrong.status_code == 401
                body = {"model": "mock-echo", "messages": [{"role": "user", "content": f"my key is {REAL_KEY}"}]}
                auth = {"Authorization": f"Bearer {REAL_KEY}"}
                echoed = await http.post("/v1/chat/completions", json=body, headers=auth)
                assert echoed.status_code == 200
                broken = await http.post("/v1/chat/completions", content=f"{{{REAL_KEY}", headers=auth)
                assert broken.status_code == 400
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    log = proc.stderr_text()
    assert "GET /v1/models 401" in log  # the requests were logged...
    assert "POST /v1/chat/completions 200" in log
    assert REAL_KEY not in log  # ...without any key
    assert WRONG_KEY not in log


def test_redaction_covers_keys_bearer_tokens_and_authorization_values() -> None:
    line = (
        f"key {REAL_KEY} headers [(b'authorization', b'Bearer {WRONG_KEY}')] "
        f"Authorization: Basic dXNlcjpwYXNz subprotocol openai-insecure-api-key.{WRONG_KEY}"
    )
    cleaned = redact(line, [REAL_KEY])
    assert REAL_KEY not in cleaned
    assert WRONG_KEY not in cleaned
    assert "dXNlcjpwYXNz" not in cleaned
    assert cleaned.count(REDACTED) >= 4


def test_formatter_redacts_arguments_and_tracebacks() -> None:
    import logging

    formatter = RedactingFormatter("%(message)s", [REAL_KEY])
    try:
        raise ValueError(f"bad key {REAL_KEY}")
    except ValueError as exc:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "got %s", (REAL_KEY,), (ValueError, exc, None))
    text = formatter.format(record)
    assert "ValueError" in text
    assert REAL_KEY not in text
