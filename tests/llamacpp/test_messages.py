"""The anthropic SDK against the real local model through trinfer's Messages API (real hypercorn on port 0).

Includes a recorded Claude-Code-shaped request (tests/messages/data/claude_code_request.json: a large system
prompt in ``cache_control`` blocks led by the per-request attribution line, fourteen tools with draft-07
schemas, ``metadata.user_id``, ``thinking``, ``stream: true``), which the local model must answer without error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from adapters.llamacpp.defaults import DEFAULT_CHAT_MODEL_ID
from tests.messages.sdk import async_client

from ..daemon_harness import running_daemon

pytestmark = pytest.mark.llama

MODEL = DEFAULT_CHAT_MODEL_ID
CLAUDE_CODE_REQUEST = Path(__file__).resolve().parents[1] / "messages" / "data" / "claude_code_request.json"
QUESTION: list[Any] = [{"role": "user", "content": "Name three animals that live in the sea."}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def config(model_path: Path, **options: Any) -> dict[str, Any]:
    backend = {"name": "smollm2", "kind": "llamacpp", "models": [MODEL], "model_path": str(model_path)}
    return {"backends": [{**backend, "active": 1, "queue": 4, **options}]}


async def test_stream_equals_create_at_temperature_0(chat_model_path: Path) -> None:
    with trio.fail_after(180):
        async with running_daemon(config(chat_model_path)) as d, async_client(d) as client:
            whole = await client.messages.create(
                model=MODEL, max_tokens=40, messages=QUESTION, extra_body={"temperature": 0}
            )
            async with client.messages.stream(
                model=MODEL, max_tokens=40, messages=QUESTION, extra_body={"temperature": 0}
            ) as stream:
                pieces = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
            counted = await client.messages.count_tokens(model=MODEL, messages=QUESTION)
    text = whole.content[0].text  # type: ignore[union-attr]
    assert text and "".join(pieces) == text
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == whole.stop_reason
    assert whole.stop_reason in ("end_turn", "max_tokens")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        whole.usage.input_tokens,
        whole.usage.output_tokens,
    )
    # count_tokens tokenizes the very prompt the generation evaluated: the chat template applied.
    assert counted.input_tokens == whole.usage.input_tokens > len(QUESTION[0]["content"].split())


async def test_count_tokens_includes_the_tools(chat_model_path: Path) -> None:
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, async_client(d) as client:
            bare = await client.messages.count_tokens(model=MODEL, messages=QUESTION)
            with_tools = await client.messages.count_tokens(model=MODEL, messages=QUESTION, tools=[WEATHER])
            called = await client.messages.create(
                model=MODEL,
                max_tokens=60,
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tools=[WEATHER],
                tool_choice={"type": "tool", "name": "get_weather"},
                extra_body={"temperature": 0},
            )
    assert with_tools.input_tokens > bare.input_tokens + 20  # the tools note and the schema are in the prompt
    (call,) = called.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input, dict) and isinstance(call.input.get("city"), str)
    assert called.stop_reason == "tool_use"


async def test_recorded_claude_code_request_is_answered(chat_model_path: Path) -> None:
    body = json.loads(CLAUDE_CODE_REQUEST.read_text())
    body["model"] = MODEL
    with trio.fail_after(600):
        async with running_daemon(config(chat_model_path, n_ctx=4096)) as d, d.http() as http:
            counted = await http.post(
                "/v1/messages/count_tokens", json={k: body[k] for k in ("model", "system", "messages", "tools")}
            )
            raw = await http.post(
                "/v1/messages?beta=true",
                json=body,
                headers={"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"},
                timeout=600,
            )
    assert counted.status_code == 200, counted.text
    assert 3000 < counted.json()["input_tokens"] < 4096  # room left for an answer of at most ~670 tokens
    assert raw.status_code == 200, raw.text
    frames = [frame.split("\n") for frame in raw.text.split("\n\n") if frame]
    names = [lines[0].removeprefix("event: ") for lines in frames]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert "error" not in names
    delta = json.loads(frames[-2][1].removeprefix("data: "))
    assert delta["delta"]["stop_reason"] in ("end_turn", "tool_use", "max_tokens")
    assert delta["usage"]["input_tokens"] == counted.json()["input_tokens"]
