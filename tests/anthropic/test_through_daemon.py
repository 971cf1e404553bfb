"""OpenAI SDK clients using Claude through trinfer unchanged: the whole daemon on real sockets, the real
``openai`` SDK as client, the anthropic backend talking to the fake Messages API on loopback."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import trio

from proxy.daemon import StartupError
from tests.daemon_harness import running_daemon

from .conftest import KEY_ENV, MODEL, UPSTREAM_MODEL, daemon_config, daemon_for
from .fake_upstream import (
    DEFAULT_KEY,
    FakeMessagesAPI,
    Hang,
    error_event,
    error_reply,
    message_end,
    message_start,
    redacted_thinking_block,
    stream_reply,
    text_block,
    text_reply,
    thinking_block,
    tool_block,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)


async def test_non_streaming_chat(fake: FakeMessagesAPI) -> None:
    fake.reply(text_reply(["Bonjour", " !"], input_tokens=14, output_tokens=3))
    async with daemon_for(fake) as d, d.client() as client:
        reply = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": "Speak French."}, {"role": "user", "content": "Hello"}],
            temperature=0.2,
            max_tokens=50,
        )
    assert reply.choices[0].message.content == "Bonjour !"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (14, 3, 17)
    sent = fake.requests[-1].body
    assert sent["model"] == UPSTREAM_MODEL
    assert sent["system"] == "Speak French."
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 50)


async def test_streaming_tool_call_with_usage(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(input_tokens=30),
            text_block(0, ["Checking"]),
            tool_block(1, "toolu_7", "get_weather", ['{"city":', ' "Paris"}']),
            message_end("tool_use", output_tokens=21),
        )
    )
    async with daemon_for(fake) as d, d.client() as client:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == "Checking"
    assert calls[0].id == "toolu_7"
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function is not None)
    assert json.loads(arguments) == {"city": "Paris"}
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (30, 21)
    assert fake.requests[-1].body["tool_choice"] == {"type": "any"}


async def test_upstream_rate_limit_reaches_the_client_with_retry_after(fake: FakeMessagesAPI) -> None:
    fake.reply(error_reply(429, "rate_limit_error", "slow down", [("retry-after", "12")]))
    async with daemon_for(fake) as d, d.client() as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "12"
    assert caught.value.code == "upstream_rate_limited"


async def test_refused_upstream_key_is_a_502_that_does_not_show_the_key(
    fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-ant-revoked-key-000")
    async with daemon_for(fake) as d, d.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502
    assert "upstream API key was refused" in caught.value.message
    assert "sk-ant-revoked-key-000" not in caught.value.response.text


async def test_failure_after_the_first_token_ends_the_stream_with_an_error(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(),
            text_block(0, ["Partial", " answer"])[:4],
            error_event("overloaded_error", "Overloaded"),
        )
    )
    received: list[str] = []
    async with daemon_for(fake) as d, d.client() as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
    assert received == ["Partial", " answer"]


async def test_client_disconnect_closes_the_upstream_stream(fake: FakeMessagesAPI) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["Once", " upon", " a time"])[:4], Hang()))
    async with daemon_for(fake) as d:
        async with d.client() as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "story"}], stream=True
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await stream.close()
        with trio.fail_after(10):
            await fake.wait_disconnected()
    assert fake.disconnects == 1


async def test_missing_key_fails_the_daemon_boot(fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with trio.fail_after(20), pytest.raises(StartupError, match=KEY_ENV):
        async with running_daemon(daemon_config(fake)):
            raise AssertionError("the daemon became ready without an API key")
    assert fake.requests == []


async def test_responses_api_through_the_anthropic_backend(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(input_tokens=9),
            thinking_block(0, ["Let me think"]),
            text_block(1, ["Bon", "jour"]),
            message_end("end_turn", output_tokens=4),
        )
    )
    async with (
        daemon_for(fake) as d,
        d.client() as client,
        client.responses.stream(model=MODEL, input="Hello", instructions="Speak French.") as stream,
    ):
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Bonjour"
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert "response.reasoning_text.delta" in types and types[-1] == "response.completed"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (9, 4)
    assert fake.requests[-1].body["system"] == "Speak French."


async def test_legacy_completions_are_refused_for_a_chat_only_model(fake: FakeMessagesAPI) -> None:
    async with daemon_for(fake) as d, d.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.completions.create(model=MODEL, prompt="Once upon a time")
    assert (caught.value.code, caught.value.param) == ("unsupported_parameter", "model")
    assert "raw text" in caught.value.message
    assert fake.requests == []  # refused before anything went upstream, never wrapped in a chat


async def test_chat_gets_claudes_reasoning_text_and_never_its_signature(fake: FakeMessagesAPI) -> None:
    """Through /v1/chat/completions reasoning is ``reasoning_content``; the signature and redacted reasoning
    Anthropic sends have no place in that dialect: no chunk carries them, and no chunk is empty because of them."""
    signature = "U0lHTkFUVVJFLWJ5dGVz"
    reply = stream_reply(
        message_start(input_tokens=5),
        thinking_block(0, ["Let me ", "think"], signature=signature),
        redacted_thinking_block(1, "UkVEQUNURUQ="),
        text_block(2, ["Bon", "jour"]),
        message_end("end_turn", output_tokens=4),
    )
    fake.reply(reply, reply)
    hello: Any = [{"role": "user", "content": "Hello"}]
    async with daemon_for(fake) as d, d.client() as client:
        stream = await client.chat.completions.create(model=MODEL, messages=hello, stream=True)
        deltas = [chunk.choices[0].delta.model_dump(exclude_none=True) async for chunk in stream if chunk.choices]
        whole = await client.chat.completions.create(model=MODEL, messages=hello)
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"reasoning_content": "Let me "},
        {"reasoning_content": "think"},
        {"content": "Bon"},
        {"content": "jour"},
        {},
    ]
    message = whole.choices[0].message.model_dump()
    assert (message["content"], message["reasoning_content"]) == ("Bonjour", "Let me think")
    assert signature not in json.dumps(message) and "UkVEQUNURUQ=" not in json.dumps(message)
