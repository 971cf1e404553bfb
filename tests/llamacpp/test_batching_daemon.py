"""Batching features through the real daemon and the official ``openai`` SDK: n choices, log probabilities,
cached prompt tokens in usage, concurrent streams admitted together, and a 400 for n above ``parallel``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import trio

from adapters.llamacpp.defaults import DEFAULT_CHAT_MODEL_ID

from ..daemon_harness import running_daemon

pytestmark = pytest.mark.llama

MODEL = DEFAULT_CHAT_MODEL_ID


def config(model_path: Path, **options: Any) -> dict[str, Any]:
    backend = {"name": "smollm2", "kind": "llamacpp", "models": [MODEL], "model_path": str(model_path)}
    return {"backends": [{**backend, **options}]}


async def test_n_choices_and_logprobs_through_the_sdk(chat_model_path: Path) -> None:
    messages: Any = [{"role": "user", "content": "Invent a name for a dog."}]
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            whole = await client.chat.completions.create(
                model=MODEL, messages=messages, n=3, seed=5, temperature=1.0, max_tokens=12,
                logprobs=True, top_logprobs=2,
            )  # fmt: skip
            stream = await client.chat.completions.create(
                model=MODEL, messages=messages, n=3, seed=5, temperature=1.0, max_tokens=12, stream=True
            )
            streamed: dict[int, str] = {}
            finishes: dict[int, str] = {}
            async for chunk in stream:
                for choice in chunk.choices:
                    streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
                    if choice.finish_reason:
                        finishes[choice.index] = choice.finish_reason
    assert [c.index for c in whole.choices] == [0, 1, 2]
    for choice in whole.choices:
        assert choice.message.content
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert all(len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    assert streamed == {c.index: c.message.content for c in whole.choices}
    assert sorted(finishes) == [0, 1, 2]
    assert whole.usage is not None and whole.usage.completion_tokens <= 36


async def test_the_second_turn_reports_cached_prompt_tokens(chat_model_path: Path) -> None:
    first: Any = [{"role": "user", "content": "My favourite colour is green."}]
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            one = await client.chat.completions.create(model=MODEL, messages=first, temperature=0, max_tokens=16)
            answer = one.choices[0].message.content or ""
            second: Any = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "Why?"}]
            two = await client.chat.completions.create(model=MODEL, messages=second, temperature=0, max_tokens=8)
    assert one.usage is not None and two.usage is not None
    assert two.usage.prompt_tokens_details is not None
    assert two.usage.prompt_tokens_details.cached_tokens is not None
    assert two.usage.prompt_tokens_details.cached_tokens >= one.usage.prompt_tokens


async def test_concurrent_requests_are_admitted_together_and_n_above_parallel_is_a_400(
    chat_model_path: Path,
) -> None:
    """With parallel = 3, three streams are in the backend's batch at once (admission lets them all in);
    n = 4 is refused with a 400 naming ``n``."""
    most = 0
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path, parallel=3)) as d, d.client() as client:

            async def one(i: int) -> None:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"Story {i} about a cat."}],
                    temperature=0, max_tokens=24, logit_bias={"2": -100}, stream=True,
                )  # fmt: skip
                async for _ in stream:
                    pass

            async def watch() -> None:
                nonlocal most
                while True:
                    most = max(most, int(d.backend_status("smollm2")["sequences_running"]))
                    await trio.sleep(0.001)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                async with trio.open_nursery() as streams:
                    for i in range(3):
                        streams.start_soon(one, i)
                nursery.cancel_scope.cancel()
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Hi"}], n=4, max_tokens=2
                )
    assert most == 3
    assert refused.value.status_code == 400
    assert isinstance(refused.value.body, dict) and refused.value.body.get("param") == "n"
