"""Legacy completions and the Responses API on the real SmolLM2 model, through the daemon and the openai SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import trio

from adapters.llamacpp.defaults import DEFAULT_CHAT_MODEL_ID

from ..daemon_harness import running_daemon

pytestmark = pytest.mark.llama

MODEL = DEFAULT_CHAT_MODEL_ID
PROMPTS = ["The capital of France is", "def fibonacci(n):"]
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def config(model_path: Path, **options: Any) -> dict[str, Any]:
    backend = {"name": "smollm2", "kind": "llamacpp", "models": [MODEL], "model_path": str(model_path)}
    return {"backends": [{**backend, "active": 1, "queue": 4, **options}]}


def raw_token_count(model_path: Path, text: str) -> int:
    """The token count of ``text`` as it is (BOS, no chat template), from a separately loaded vocabulary."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    try:
        return len(vocab.tokenize(text.encode(), add_bos=True, special=True))
    finally:
        vocab.close()


async def test_completions_stream_equals_non_streaming_for_two_prompts(chat_model_path: Path) -> None:
    settings: Any = {"model": MODEL, "prompt": PROMPTS, "temperature": 0, "seed": 1, "max_tokens": 12}
    with trio.fail_after(300):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            whole = await client.completions.create(**settings)
            stream = await client.completions.create(
                **settings, stream=True, stream_options={"include_usage": True}
            )
            texts: dict[int, str] = {}
            finish: dict[int, str] = {}
            usage = None
            async for chunk in stream:
                for choice in chunk.choices:
                    texts[choice.index] = texts.get(choice.index, "") + choice.text
                    if choice.finish_reason:
                        finish[choice.index] = choice.finish_reason
                usage = chunk.usage or usage
    assert [c.index for c in whole.choices] == [0, 1]
    assert all(c.text for c in whole.choices)
    assert texts == {c.index: c.text for c in whole.choices}
    assert finish == {c.index: c.finish_reason for c in whole.choices}
    assert whole.usage is not None and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )
    # The prompts were evaluated as they are: no chat template around them.
    expected = sum(raw_token_count(chat_model_path, prompt) for prompt in PROMPTS)
    assert whole.usage.prompt_tokens == expected


async def test_an_over_long_prompt_is_400_context_length_exceeded(chat_model_path: Path) -> None:
    with trio.fail_after(300):
        async with running_daemon(config(chat_model_path, n_ctx=256)) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as raised:
                await client.completions.create(model=MODEL, prompt="word " * 400, max_tokens=5)
            ok = await client.completions.create(model=MODEL, prompt="Hello", max_tokens=2, temperature=0)
    assert raised.value.code == "context_length_exceeded"
    assert ok.choices[0].finish_reason in ("length", "stop")


async def test_completions_n_choices_with_logprobs_on_the_real_model(chat_model_path: Path) -> None:
    """n = 2 at temperature 0 gives two equal choices (forked from one prompt evaluation), indexed 0 and 1;
    ``logprobs: 2`` gives legacy lists whose tokens join to each text, offsets into it, two alternatives per
    token with the sampled (greedy) token the most likely; streamed, the same texts and tokens per index."""
    settings: Any = {
        "model": MODEL,
        "prompt": PROMPTS[0],
        "temperature": 0,
        "max_tokens": 8,
        "n": 2,
        "logprobs": 2,
    }
    with trio.fail_after(300):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            whole = await client.completions.create(**settings)
            stream = await client.completions.create(**settings, stream=True)
            texts: dict[int, str] = {}
            tokens: dict[int, list[str]] = {}
            async for chunk in stream:
                for c in chunk.choices:
                    texts[c.index] = texts.get(c.index, "") + c.text
                    if c.logprobs is not None:
                        tokens.setdefault(c.index, []).extend(c.logprobs.tokens or [])
    assert [c.index for c in whole.choices] == [0, 1]
    first, second = whole.choices
    assert first.text and first.text == second.text
    for choice in whole.choices:
        logprobs = choice.logprobs
        assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs and logprobs.top_logprobs
        assert "".join(logprobs.tokens) == choice.text
        assert logprobs.text_offset == [len("".join(logprobs.tokens[:i])) for i in range(len(logprobs.tokens))]
        for lp, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
            assert len(top) == 2 and lp <= 0
            assert lp == pytest.approx(max(top.values()), abs=1e-4)
    assert texts == {c.index: c.text for c in whole.choices}
    assert tokens == {c.index: c.logprobs.tokens for c in whole.choices if c.logprobs}


async def test_responses_with_a_forced_tool_and_a_json_schema(chat_model_path: Path) -> None:
    with trio.fail_after(300):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            async with client.responses.stream(
                model=MODEL,
                input="What is the weather in Paris?",
                tools=[WEATHER],
                tool_choice="required",
                temperature=0,
                max_output_tokens=64,
            ) as stream:
                called = await stream.get_final_response()
            answered = await client.responses.create(
                model=MODEL,
                instructions="Answer in JSON.",
                input="What is 2 + 2?",
                text={"format": {"type": "json_schema", "name": "answer", "schema": ANSWER, "strict": True}},
                temperature=0,
                max_output_tokens=64,
            )
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    assert answered.status == "completed"
    jsonschema.validate(json.loads(answered.output_text), ANSWER)
