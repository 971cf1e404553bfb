"""The OpenAI surface through the official SDK: chat (plain and streaming), tools, embeddings, models."""

from __future__ import annotations

import base64
import struct
from typing import Any

import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon

HELLO: list[Any] = [{"role": "user", "content": "hello big world"}]


async def test_chat_completion_returns_the_whole_answer_with_usage() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            reply = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == MOCK_MODEL
    choice = reply.choices[0]
    assert (choice.message.role, choice.message.content, choice.finish_reason) == (
        "assistant",
        "hello big world",
        "stop",
    )
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (3, 3, 6)
    details = reply.usage.model_dump(include={"prompt_tokens_details", "completion_tokens_details"})
    assert details["prompt_tokens_details"]["cached_tokens"] == 0
    assert details["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_streaming_sends_role_first_one_id_and_a_finish_chunk() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            stream = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, stream=True)
            chunks = [chunk async for chunk in stream]
    # As OpenAI: a role chunk with empty content first, then the content chunks, then the finish chunk.
    assert [c.choices[0].delta.content for c in chunks] == ["", "hello ", "big ", "world", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.model_dump(exclude_unset=True) == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert len({c.id for c in chunks}) == 1
    assert len({c.created for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, None, "stop"]
    assert all(c.usage is None for c in chunks)


async def test_include_usage_adds_one_final_chunk_without_choices() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            stream = await client.chat.completions.create(
                model=MOCK_MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3, 3)
    assert last.usage.prompt_tokens_details is not None and last.usage.completion_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert last.usage.completion_tokens_details.reasoning_tokens == 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


async def test_raw_sse_stream_ends_with_done() -> None:
    body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: {") for event in events[:-2])
    # the role chunk, three content chunks, the finish chunk, [DONE], and the trailing blank
    assert len(events) == 1 + 3 + 1 + 2


async def test_max_tokens_ends_with_length() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            reply = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, max_tokens=2)
    assert reply.choices[0].message.content == "hello big "
    assert reply.choices[0].finish_reason == "length"


async def test_forced_tool_call_comes_back_as_tool_calls() -> None:
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            reply = await client.chat.completions.create(
                model=MOCK_MODEL, messages=HELLO, tools=tools, tool_choice="required"
            )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": ""}')


async def test_embeddings_float_and_base64_agree() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(embed_dim=8)) as d, d.client() as client:
            floats = await client.embeddings.create(model=MOCK_MODEL, input=["a", "b c"])
            async with d.http() as http:
                raw = await http.post(
                    "/v1/embeddings", json={"model": MOCK_MODEL, "input": "a", "encoding_format": "base64"}
                )
    assert [e.index for e in floats.data] == [0, 1]
    assert all(len(e.embedding) == 8 for e in floats.data)
    assert floats.usage.prompt_tokens == 3
    decoded = struct.unpack("<8f", base64.b64decode(raw.json()["data"][0]["embedding"]))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


@pytest.mark.parametrize("tokens", [[12, 34, 56], [[12, 34], [56]]], ids=["one", "several"])
async def test_token_id_embeddings_for_a_backend_without_a_vocabulary_are_400(tokens: list[Any]) -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(embed_dim=8)) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.embeddings.create(model=MOCK_MODEL, input=tokens)
            status = (await d.admin_get("/admin/status")).json()
    assert (caught.value.code, caught.value.body["param"]) == ("unsupported_parameter", "input")  # type: ignore[index]
    assert "cannot embed token ids" in caught.value.message
    assert status["backends"][0]["breaker"]["recent_failures"] == 0


async def test_embeddings_for_a_model_that_cannot_embed_is_400() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.embeddings.create(model=MOCK_MODEL, input="a")
    assert caught.value.code == "unsupported_model"


async def test_chat_n_choices_and_logprobs_on_the_mock() -> None:
    """The mock answers n > 1 and log probabilities (the same answer per choice, made-up numbers), so clients
    can exercise them without a model: n choices, each with logprobs content whose tokens join to its text."""
    hi: Any = [{"role": "user", "content": "hello big world"}]
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            whole = await client.chat.completions.create(
                model=MOCK_MODEL, messages=hi, n=2, logprobs=True, top_logprobs=3
            )
            stream = await client.chat.completions.create(model=MOCK_MODEL, messages=hi, n=2, stream=True)
            streamed: dict[int, str] = {}
            async for chunk in stream:
                for choice in chunk.choices:
                    streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
    assert [c.index for c in whole.choices] == [0, 1]
    for choice in whole.choices:
        assert choice.message.content == "hello big world"
        assert choice.logprobs is not None and choice.logprobs.content
        assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
        assert all(len(t.top_logprobs) == 3 for t in choice.logprobs.content)
    assert streamed == {0: "hello big world", 1: "hello big world"}
    assert whole.usage is not None and whole.usage.completion_tokens == 6


async def test_models_lists_every_configured_id_and_retrieves_each() -> None:
    config = mock_config(models=("first", "second"))
    with trio.fail_after(10):
        async with running_daemon(config) as d, d.client() as client:
            page = await client.models.list()
            one = await client.models.retrieve("second")
            with pytest.raises(openai.NotFoundError) as caught:
                await client.models.retrieve("third")
    assert [m.id for m in page.data] == ["first", "second"]
    assert (one.id, one.object, one.owned_by) == ("second", "model", "trinfer")
    assert caught.value.code == "model_not_found"


async def test_health_is_on_both_listeners() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            assert (await http.get("/health")).json() == {"status": "ok"}
            assert (await d.admin_get("/health")).json() == {"status": "ok"}


async def test_a_stream_longer_than_quarts_default_response_timeout_is_not_cut(
    autojump_clock: trio.abc.Clock,
) -> None:
    """quart cuts responses after RESPONSE_TIMEOUT (60 s by default); a long generation must stream to its end."""
    words = " ".join(f"w{i}" for i in range(12))
    with trio.fail_after(600):
        async with running_daemon(mock_config(token_delay_ms=10_000)) as d, d.client() as client:
            started = trio.current_time()
            stream = await client.chat.completions.create(
                model=MOCK_MODEL, messages=[{"role": "user", "content": words}], stream=True
            )
            chunks = [chunk async for chunk in stream]
            assert trio.current_time() - started >= 120  # virtual time: the 12 token delays really elapsed
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == words
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_each_request_is_logged_once_with_its_id_status_and_model(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="trinfer.http")
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            ok = await http.post("/v1/chat/completions", json={"model": MOCK_MODEL, "messages": HELLO})
            missing = await http.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO})
    lines = [r.getMessage() for r in caplog.records if r.name == "trinfer.http"]
    for response, status, model in ((ok, 200, MOCK_MODEL), (missing, 404, "nope")):
        request_id = response.headers["x-request-id"]
        (line,) = [line for line in lines if request_id in line]
        assert line.startswith(f"POST /v1/chat/completions {status} ")
        assert f"id={request_id} model={model}" in line
    assert ok.headers["x-request-id"] != missing.headers["x-request-id"]
