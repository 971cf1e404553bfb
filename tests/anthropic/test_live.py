"""Against the real Anthropic API: runs only when ANTHROPIC_API_KEY is set (the one allowed skip).

``ANTHROPIC_LIVE_MODEL`` picks the model (default: a small, cheap one). Each test spends a few dozen tokens.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import pytest

from adapters.anthropic_backend import AnthropicBackend
from adapters.types import (
    Done,
    MessageV2,
    ResolvedV2,
    Role,
    SamplingParams,
    StopReason,
    Text,
    TextBlock,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    ToolUse,
)

from .conftest import collect

pytestmark = pytest.mark.skipif(
    not os.environ.get("ANTHROPIC_API_KEY"), reason="live Anthropic test: set ANTHROPIC_API_KEY to run it"
)

MODEL = os.environ.get("ANTHROPIC_LIVE_MODEL", "claude-haiku-4-5")


@pytest.fixture
async def live() -> AsyncIterator[AnthropicBackend]:
    backend = AnthropicBackend.from_options({"max_tokens_default": 64, "timeout_s": 60})
    await backend.boot()
    yield backend
    await backend.stop(5)


def ask(text: str, **fields: object) -> ResolvedV2:
    return ResolvedV2(
        model=MODEL,
        messages=(MessageV2(Role.USER, (TextBlock(text),)),),
        sampling=SamplingParams(temperature=0.0, max_tokens=64),
        **fields,  # type: ignore[arg-type]
    )


async def test_live_text_stream(live: AnthropicBackend) -> None:
    events = await collect(live, ask("Reply with the single word: pong"), guard_s=60)
    text = "".join(e.text for e in events if isinstance(e, Text))
    done = events[-1]
    assert isinstance(done, Done)
    assert "pong" in text.lower()
    assert done.usage.prompt_tokens > 0
    assert done.usage.completion_tokens > 0


async def test_live_forced_tool_call(live: AnthropicBackend) -> None:
    tool = ToolSpec(
        name="get_weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    req = ask("What is the weather in Paris?", tools=(tool,), tool_choice=ToolChoice(ToolChoiceMode.REQUIRED))
    events = await collect(live, req, guard_s=60)
    calls = [e for e in events if isinstance(e, ToolUse)]
    assert calls
    assert json.loads(calls[0].arguments)["city"]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.stop_reason is StopReason.TOOL_USE
