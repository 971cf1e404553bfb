"""Anthropic in, Anthropic out: the anthropic SDK talks to trinfer, whose anthropic backend talks to the fake
Messages API on loopback (tests/anthropic/fake_upstream.py). What the client sends reaches upstream, what
upstream streams (thinking, text, tool input in pieces, stop sequences, errors) reaches the client."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest
import trio

from tests.anthropic.conftest import KEY_ENV, MODEL, UPSTREAM_MODEL, daemon_for
from tests.anthropic.echo_model import echo_reply
from tests.anthropic.fake_upstream import (
    COUNT_TOKENS_PATH,
    DEFAULT_KEY,
    FakeMessagesAPI,
    Hang,
    Reply,
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
from tests.daemon_harness import wait_until

from .sdk import async_client

HELLO: list[Any] = [{"role": "user", "content": "hello from the anthropic sdk"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeMessagesAPI:
    server = FakeMessagesAPI(responder=echo_reply)
    await nursery.start(server.serve)
    return server


async def test_create_reaches_upstream_and_back(fake: FakeMessagesAPI) -> None:
    async with daemon_for(fake) as d, async_client(d) as client:
        message = await client.messages.create(
            model=MODEL,
            max_tokens=100,
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            messages=HELLO,
            stop_sequences=["anthropic"],
            metadata={"user_id": "user-1"},
            extra_body={"temperature": 0.3, "top_k": 5},
        )
    assert message.content[0].text == "hello from the "  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "anthropic")
    assert message.usage.input_tokens == 7  # upstream's count: the words of system and messages
    (sent,) = fake.requests
    assert sent.body["model"] == UPSTREAM_MODEL
    assert sent.body["system"] == "Be brief."
    assert sent.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": HELLO[0]["content"]}]}]
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["top_k"]) == (100, 0.3, 5)
    assert sent.body["stop_sequences"] == ["anthropic"]
    assert "metadata" not in sent.body  # the user id is for trinfer's logs, never sent on


async def test_thinking_and_text_stream_through(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(input_tokens=9),
            thinking_block(0, ["Let me ", "think."]),
            text_block(1, ["The ", "answer."]),
            message_end("end_turn", 6),
        )
    )
    async with (
        daemon_for(fake) as d,
        async_client(d) as client,
        client.messages.stream(model=MODEL, max_tokens=2048, messages=HELLO) as stream,
    ):
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds and "text" in kinds
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking == "Let me think."  # type: ignore[union-attr]
    assert final.content[0].signature == "c2ln"  # type: ignore[union-attr]
    assert final.content[1].text == "The answer."  # type: ignore[union-attr]
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 6)


#: A signature as Anthropic writes them: base64 with ``+``, ``/`` and padding, which must survive byte for byte.
SIGNATURE = "EqQBCkYIBxgCKkD+x/Zy0Qm9V3+ab/cd==" + "A" * 200
THINK = {"type": "enabled", "budget_tokens": 1024}


def thinking_reply(signature: str = SIGNATURE) -> Reply:
    return stream_reply(
        message_start(input_tokens=9),
        thinking_block(0, ["Two plus ", "two is four."], signature=signature),
        redacted_thinking_block(1, "ZW5jcnlwdGVk"),
        text_block(2, ["Four."]),
        message_end("end_turn", 6),
    )


async def test_thinking_round_trip_keeps_the_signature_byte_for_byte(fake: FakeMessagesAPI) -> None:
    """Non-streaming: the client's ``thinking`` goes upstream; the answer's thinking block carries upstream's
    signature, its redacted block its data; sent back in the next turn, both reach upstream unchanged."""
    fake.reply(thinking_reply(), text_reply(["Eight."]))
    question: Any = {"role": "user", "content": "2+2?"}
    async with daemon_for(fake) as d, async_client(d) as client:
        first = await client.messages.create(model=MODEL, max_tokens=2048, messages=[question], thinking=THINK)
        assert [block.type for block in first.content] == ["thinking", "redacted_thinking", "text"]
        thinking, redacted = first.content[0], first.content[1]
        assert thinking.type == "thinking" and redacted.type == "redacted_thinking"
        assert (thinking.thinking, thinking.signature, redacted.data) == (
            "Two plus two is four.",
            SIGNATURE,
            "ZW5jcnlwdGVk",
        )
        follow_up: list[Any] = [
            question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": "and doubled?"},
        ]
        second = await client.messages.create(model=MODEL, max_tokens=2048, messages=follow_up, thinking=THINK)
    assert second.content[0].text == "Eight."  # type: ignore[union-attr]
    assert [r.body["thinking"] for r in fake.requests] == [THINK, THINK]
    assert fake.requests[1].body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Two plus two is four.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
            {"type": "text", "text": "Four."},
        ],
    }


async def test_streamed_thinking_carries_thinking_and_signature_deltas(fake: FakeMessagesAPI) -> None:
    """Streaming: thinking_delta pieces, one signature_delta ending the block, the redacted block whole, text
    after them, at indexes 0, 1, 2 (the SDK's accumulator places every delta by its index)."""
    fake.reply(thinking_reply())
    async with (
        daemon_for(fake) as d,
        async_client(d) as client,
        client.messages.stream(model=MODEL, max_tokens=2048, messages=HELLO, thinking=THINK) as stream,
    ):
        raw = [event async for event in stream if event.type.startswith("content_block")]
        final = await stream.get_final_message()
    deltas = [(e.index, e.delta.type) for e in raw if e.type == "content_block_delta"]
    assert deltas == [(0, "thinking_delta"), (0, "thinking_delta"), (0, "signature_delta"), (2, "text_delta")]
    starts = [(e.index, e.content_block.type) for e in raw if e.type == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "redacted_thinking"), (2, "text")]
    assert [e.index for e in raw if e.type == "content_block_stop"] == [0, 1, 2]
    assert final.content[0].signature == SIGNATURE  # type: ignore[union-attr]
    assert final.content[1].data == "ZW5jcnlwdGVk"  # type: ignore[union-attr]
    assert fake.requests[0].body["thinking"] == THINK


async def test_tool_loop_with_thinking_sends_the_turns_thinking_before_its_tool_use(fake: FakeMessagesAPI) -> None:
    """Anthropic refuses a tool loop with thinking on unless the assistant turn that called the tool starts with
    its signed thinking: streamed, accumulated by the SDK, sent back with the tool result, it arrives intact."""
    fake.reply(
        stream_reply(
            message_start(),
            thinking_block(0, ["I need the weather."], signature=SIGNATURE),
            tool_block(1, "toolu_up_7", "get_weather", ['{"city": ', '"Oslo"}']),
            message_end("tool_use", 12),
        ),
        stream_reply(
            message_start(),
            thinking_block(0, ["It is cold."], signature="c2Vjb25k"),
            text_block(1, ["Wrap up warm."]),
            message_end("end_turn", 7),
        ),
    )
    ask: Any = {"role": "user", "content": "Oslo weather?"}
    async with daemon_for(fake) as d, async_client(d) as client:
        async with client.messages.stream(
            model=MODEL, max_tokens=4096, messages=[ask], tools=[WEATHER], thinking=THINK
        ) as stream:
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use"
        call = first.content[1]
        assert call.type == "tool_use"
        loop: list[Any] = [
            ask,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-5 C"}]},
        ]
        second = await client.messages.create(
            model=MODEL, max_tokens=4096, messages=loop, tools=[WEATHER], thinking=THINK
        )
    assert fake.requests[1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I need the weather.", "signature": SIGNATURE},
                {"type": "tool_use", "id": "toolu_up_7", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_up_7", "content": "-5 C"}]},
    ]
    assert [block.type for block in second.content] == ["thinking", "text"]
    assert second.content[0].signature == "c2Vjb25k"  # type: ignore[union-attr]


async def test_forced_tool_use_and_tool_result_round_trip(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(),
            tool_block(0, "toolu_up_1", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']),
            message_end("tool_use", 8),
        )
    )
    async with daemon_for(fake) as d, async_client(d) as client:
        first = await client.messages.create(
            model=MODEL, max_tokens=100, messages=HELLO, tools=[WEATHER], tool_choice={"type": "any"}
        )
        call = first.content[0]
        assert call.type == "tool_use" and call.input == {"city": "Paris"} and call.id == "toolu_up_1"
        follow_up: list[Any] = [
            *HELLO,
            {"role": "assistant", "content": [call.model_dump()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ]
        second = await client.messages.create(model=MODEL, max_tokens=100, messages=follow_up, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    assert fake.requests[0].body["tool_choice"] == {"type": "any"}
    assert fake.requests[0].body["tools"][0]["input_schema"] == WEATHER["input_schema"]
    turns = fake.requests[1].body["messages"]
    assert turns[1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_up_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    assert turns[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_up_1", "content": "sunny"}],
    }
    assert second.stop_reason == "end_turn"


async def test_base64_image_reaches_a_backend_with_vision(fake: FakeMessagesAPI) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "what is it"},
    ]
    async with daemon_for(fake) as d, async_client(d) as client:
        message = await client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": content}]
        )
    assert message.content[0].text == "what is it"  # type: ignore[union-attr]
    sent = fake.requests[0].body["messages"][0]["content"]
    assert sent[0] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}


async def test_count_tokens_asks_upstream(fake: FakeMessagesAPI) -> None:
    async with daemon_for(fake) as d, async_client(d) as client:
        counted = await client.messages.count_tokens(
            model=MODEL, system="Be brief.", messages=HELLO, tools=[WEATHER]
        )
    (sent,) = fake.requests
    assert sent.path == COUNT_TOKENS_PATH
    assert set(sent.body) == {"model", "messages", "system", "tools", "tool_choice"}
    assert counted.input_tokens == 2 + 5 + 5  # system, message, tool name and description words


async def test_upstream_rate_limit_is_a_rate_limit_error(fake: FakeMessagesAPI) -> None:
    fake.reply(error_reply(429, "rate_limit_error", "slow down", headers=[("retry-after", "7")]))
    async with daemon_for(fake) as d, async_client(d) as client:
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.response.json()["error"]["type"] == "rate_limit_error"
    assert caught.value.response.headers["retry-after"] == "7"


async def test_upstream_error_mid_stream_is_one_error_event(fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(message_start(), text_block(0, ["partial "])[:3], error_event("overloaded_error", "busy"))
    )
    async with daemon_for(fake) as d, async_client(d) as client:
        received: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as caught:
            async with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
                async for text in stream.text_stream:
                    received.append(text)
    assert received == ["partial "]
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "overloaded_error"  # upstream's overload, in the client's dialect
    assert body["error"]["message"].startswith("Anthropic is overloaded")


async def test_client_leaving_closes_the_upstream_stream(fake: FakeMessagesAPI) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["one "])[:3], Hang()))
    async with daemon_for(fake) as d, async_client(d) as client:
        async with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
            async for text in stream.text_stream:
                assert text == "one "
                break
        with trio.fail_after(10):
            await fake.wait_disconnected()
            await wait_until(lambda: d.admission("claude").active == 0)
    assert d.backend_status("claude")["cancelled"] == 1
