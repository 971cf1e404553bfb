"""Legacy ``POST /v1/completions`` through the official openai SDK (mock backend: it echoes the raw prompt)."""

from __future__ import annotations

import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon


async def test_completion_of_one_prompt() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            completion = await client.completions.create(model=MOCK_MODEL, prompt="Once upon a time")
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    [choice] = completion.choices
    assert (choice.index, choice.text, choice.finish_reason) == (0, "Once upon a time", "stop")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)


async def test_max_tokens_defaults_to_16_and_ends_with_length() -> None:
    words = " ".join(f"w{i}" for i in range(40))
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            completion = await client.completions.create(model=MOCK_MODEL, prompt=words)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 16


async def test_two_prompts_are_two_choices_in_order_streamed_and_not() -> None:
    prompts = ["first prompt", "second one here"]
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            whole = await client.completions.create(model=MOCK_MODEL, prompt=prompts, echo=True, stop=["here"])
            stream = await client.completions.create(
                model=MOCK_MODEL, prompt=prompts, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
    assert [(c.index, c.text, c.finish_reason) for c in whole.choices] == [
        (0, "first promptfirst prompt", "stop"),
        (1, "second one heresecond one ", "stop"),
    ]
    assert len({c.id for c in chunks}) == 1
    content = [c for c in chunks if c.choices]
    texts: dict[int, str] = {}
    for chunk in content:
        texts[chunk.choices[0].index] = texts.get(chunk.choices[0].index, "") + chunk.choices[0].text
    assert texts == {0: "first prompt", 1: "second one here"}
    assert [c.choices[0].index for c in content] == sorted(c.choices[0].index for c in content)
    assert [c.choices[0].finish_reason for c in content if c.choices[0].finish_reason] == ["stop", "stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 2 * (2 + 3)


async def test_streaming_ends_with_done_and_equals_non_streaming() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d:
            async with d.http() as http:
                raw = await http.post(
                    "/v1/completions", json={"model": MOCK_MODEL, "prompt": "a b c", "stream": True}
                )
            async with d.client() as client:
                whole = await client.completions.create(model=MOCK_MODEL, prompt="a b c")
    assert raw.text.endswith("data: [DONE]\n\n")
    assert whole.choices[0].text == "a b c"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"suffix": "the end"}, "suffix"),
        ({"n": 2, "best_of": 3}, "best_of"),
        ({"echo": True, "logprobs": 1}, "echo"),
    ],
)
async def test_what_no_backend_here_can_do_is_unsupported(fields: dict[str, object], param: str) -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.completions.create(model=MOCK_MODEL, prompt="x", **fields)  # type: ignore[call-overload]
            status = (await d.admin_get("/admin/status")).json()
    assert (caught.value.code, caught.value.param) == ("unsupported_parameter", param)
    assert status["backends"][0]["breaker"]["recent_failures"] == 0


async def test_n_choices_with_logprobs_streamed_and_not() -> None:
    """Two prompts, n=2, logprobs=2: four choices indexed prompt by prompt, each with legacy log probabilities
    whose tokens join to its text and whose offsets point into it; the stream carries the same per choice."""
    prompts = ["one two three", "four five"]
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            whole = await client.completions.create(model=MOCK_MODEL, prompt=prompts, n=2, logprobs=2)
            stream = await client.completions.create(
                model=MOCK_MODEL,
                prompt=prompts,
                n=2,
                logprobs=2,
                stream=True,
                stream_options={"include_usage": True},
            )
            texts: dict[int, str] = {}
            tokens: dict[int, list[str]] = {}
            finishes: dict[int, str] = {}
            usage = None
            async for chunk in stream:
                usage = chunk.usage or usage
                for c in chunk.choices:
                    texts[c.index] = texts.get(c.index, "") + c.text
                    if c.logprobs is not None:
                        tokens.setdefault(c.index, []).extend(c.logprobs.tokens or [])
                    if c.finish_reason:
                        finishes[c.index] = c.finish_reason
    assert [(c.index, c.text) for c in whole.choices] == [
        (0, "one two three"),
        (1, "one two three"),
        (2, "four five"),
        (3, "four five"),
    ]
    for choice in whole.choices:
        logprobs = choice.logprobs
        assert logprobs is not None and logprobs.tokens and logprobs.top_logprobs and logprobs.text_offset
        assert "".join(logprobs.tokens) == choice.text
        offsets = [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
        assert logprobs.text_offset == offsets
        assert all(len(top) == 2 for top in logprobs.top_logprobs)
        assert logprobs.token_logprobs == [
            top[t] for top, t in zip(logprobs.top_logprobs, logprobs.tokens, strict=True)
        ]
    assert texts == {c.index: c.text for c in whole.choices}
    assert tokens == {c.index: c.logprobs.tokens for c in whole.choices if c.logprobs}
    assert finishes == dict.fromkeys(range(4), "stop")
    assert whole.usage is not None and usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (5, 2 * 3 + 2 * 2)
    assert usage.total_tokens == whole.usage.total_tokens


async def test_n_choices_end_each_with_their_own_finish_reason_and_echo_every_one() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            cut = await client.completions.create(model=MOCK_MODEL, prompt="a b c d", n=3, max_tokens=2)
            echoed = await client.completions.create(model=MOCK_MODEL, prompt="a b", n=2, best_of=2, echo=True)
    assert [(c.index, c.text, c.finish_reason, c.logprobs) for c in cut.choices] == [
        (i, "a b ", "length", None) for i in range(3)
    ]
    assert [c.text for c in echoed.choices] == ["a ba b", "a ba b"]


async def test_mid_stream_failure_is_an_error_event_without_done() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(fail="mid-stream", fail_after_tokens=1)) as d:
            async with d.client() as client:
                stream = await client.completions.create(model=MOCK_MODEL, prompt="a b c", stream=True)
                with pytest.raises(openai.APIError):
                    async for _ in stream:
                        pass
            async with d.http() as http:
                raw = await http.post(
                    "/v1/completions", json={"model": MOCK_MODEL, "prompt": "a b", "stream": True}
                )
    assert '"error"' in raw.text and "[DONE]" not in raw.text
