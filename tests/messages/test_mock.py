"""The anthropic SDK against trinfer serving the mock: every way of calling ``messages``, on real sockets."""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import trio

from tests.daemon_harness import MOCK_MODEL, keyed_config, mock_config, running_daemon

from .sdk import async_client, sse_events, sync_client

HELLO: list[Any] = [{"role": "user", "content": "hello big world"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_create_async_and_sync() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            async with async_client(d) as client:
                message = await client.messages.create(model=MOCK_MODEL, max_tokens=64, messages=HELLO)
            with sync_client(d) as blocking:
                again = await trio.to_thread.run_sync(
                    lambda: blocking.messages.create(model=MOCK_MODEL, max_tokens=64, messages=HELLO)
                )
    for answer in (message, again):
        assert answer.type == "message" and answer.role == "assistant" and answer.model == MOCK_MODEL
        assert answer.id.startswith("msg_")
        assert [block.type for block in answer.content] == ["text"]
        assert answer.content[0].text == "hello big world"  # type: ignore[union-attr]
        assert (answer.stop_reason, answer.stop_sequence) == ("end_turn", None)
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (3, 3)
    assert message.id != again.id


async def test_stream_text_and_final_message() -> None:
    with trio.fail_after(30):
        async with (
            running_daemon(mock_config()) as d,
            async_client(d) as client,
            client.messages.stream(model=MOCK_MODEL, max_tokens=64, messages=HELLO) as stream,
        ):
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert pieces == ["hello ", "big ", "world"]
    assert final.content[0].text == "hello big world"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 3)


async def test_raw_stream_events_with_sync_client() -> None:
    def run(client: anthropic.Anthropic) -> list[Any]:
        stream = client.messages.create(model=MOCK_MODEL, max_tokens=2, messages=HELLO, stream=True)
        return list(stream)

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            with sync_client(d) as client:
                events = await trio.to_thread.run_sync(run, client)
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # ping is skipped by the SDK
    assert events[-2].delta.stop_reason == "max_tokens"
    assert events[-2].usage.output_tokens == 2


async def test_stop_sequence_is_named() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            message = await client.messages.create(
                model=MOCK_MODEL, max_tokens=64, messages=HELLO, stop_sequences=["nothing", "big"]
            )
    assert message.content[0].text == "hello "  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "big")


async def test_forced_tool_use_streams_input_json_the_sdk_assembles() -> None:
    with trio.fail_after(30):
        async with (
            running_daemon(mock_config()) as d,
            async_client(d) as client,
            client.messages.stream(
                model=MOCK_MODEL,
                max_tokens=64,
                messages=HELLO,
                tools=[WEATHER],
                tool_choice={"type": "tool", "name": "get_weather"},
            ) as stream,
        ):
            kinds = [event.type async for event in stream]
            final = await stream.get_final_message()
    assert "input_json" in kinds
    (block,) = final.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": ""})
    assert final.stop_reason == "tool_use"


async def test_tool_result_round_trip() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            first = await client.messages.create(
                model=MOCK_MODEL, max_tokens=64, messages=HELLO, tools=[WEATHER], tool_choice={"type": "any"}
            )
            call = first.content[0]
            assert call.type == "tool_use"
            follow_up: list[Any] = [
                *HELLO,
                {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"},
                        {"type": "text", "text": "thanks, now say it back"},
                    ],
                },
            ]
            second = await client.messages.create(
                model=MOCK_MODEL, max_tokens=64, messages=follow_up, tools=[WEATHER]
            )
    assert second.content[0].text == "thanks, now say it back"  # type: ignore[union-attr]
    assert second.stop_reason == "end_turn"


async def test_thinking_is_accepted_and_ignored_by_a_backend_that_does_not_think() -> None:
    """``thinking`` and reasoning blocks sent back (here from a Claude answer: signed, redacted) are accepted by
    generation and by count_tokens, streaming or not, and the mock answers without reasoning. (That the blocks
    never reach such a backend is tests/adapters/test_dispatch.py's.)"""
    reasoning: list[Any] = [
        {"type": "thinking", "thinking": "ponder ponder", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "b3BhcXVl"},
    ]
    with_reasoning: list[Any] = [
        *HELLO,
        {"role": "assistant", "content": [*reasoning, {"type": "text", "text": "hi there"}]},
        {"role": "assistant", "content": reasoning},
        {"role": "user", "content": "say this back"},
    ]
    without: list[Any] = [
        *HELLO,
        {"role": "assistant", "content": "hi there"},
        {"role": "user", "content": "say this back"},
    ]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            message = await client.messages.create(
                model=MOCK_MODEL, max_tokens=2048, messages=with_reasoning, thinking=thinking
            )
            async with client.messages.stream(
                model=MOCK_MODEL, max_tokens=2048, messages=with_reasoning, thinking={"type": "adaptive"}
            ) as stream:
                streamed = await stream.get_final_message()
            counted = await client.messages.count_tokens(
                model=MOCK_MODEL, messages=with_reasoning, thinking=thinking
            )
            plain = await client.messages.count_tokens(model=MOCK_MODEL, messages=without)
    for answer in (message, streamed):
        assert [block.type for block in answer.content] == ["text"]
        assert answer.content[0].text == "say this back"  # type: ignore[union-attr]
    assert counted.input_tokens == plain.input_tokens


async def test_count_tokens_is_the_mock_word_count() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            counted = await client.messages.count_tokens(
                model=MOCK_MODEL, system="Be very brief.", messages=HELLO, tools=[WEATHER]
            )
            message = await client.messages.create(
                model=MOCK_MODEL, max_tokens=64, system="Be very brief.", messages=HELLO
            )
    assert counted.input_tokens == 6 == message.usage.input_tokens


async def test_beta_query_head_probe_headers_and_x_api_key() -> None:
    body = {"model": MOCK_MODEL, "max_tokens": 16, "messages": HELLO}
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"}
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d, d.http(api_key="") as http:
            probe = await http.head("/")
            keyed = await http.post(
                "/v1/messages?beta=true", json=body, headers={**headers, "x-api-key": d.api_key}
            )
            wrong = await http.post("/v1/messages", json=body, headers={"x-api-key": "sk-wrong"})
            none = await http.post("/v1/messages", json=body)
            bearer = await http.post(
                "/v1/messages/count_tokens", json=body, headers={"Authorization": f"Bearer {d.api_key}"}
            )
            openai_route = await http.get("/v1/models", headers={"x-api-key": d.api_key})
    assert probe.status_code == 200
    assert keyed.status_code == 200 and keyed.json()["content"][0]["text"] == "hello big world"
    for refused in (wrong, none):
        assert refused.status_code == 401
        assert refused.json()["type"] == "error"
        assert refused.json()["error"]["type"] == "authentication_error"
    assert bearer.json() == {"input_tokens": 3}
    assert openai_route.status_code == 401  # x-api-key is the Anthropic routes' header only
    assert openai_route.json()["error"]["code"] == "invalid_api_key"


async def test_every_event_has_its_event_line() -> None:
    body = {"model": MOCK_MODEL, "max_tokens": 16, "messages": HELLO, "stream": True}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, d.http() as http:
            raw = await http.post("/v1/messages", json=body)
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert [name for name, _ in events][:2] == ["message_start", "ping"]
    for name, data in events:
        assert json.loads(data)["type"] == name
    start = json.loads(events[0][1])["message"]
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert json.loads(events[-2][1])["usage"] == {"input_tokens": 3, "output_tokens": 3}


async def test_image_is_accepted_by_a_backend_that_takes_v2_content() -> None:
    image = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(b"\x89PNG...").decode()}
    content: Any = [{"type": "image", "source": image}, {"type": "text", "text": "describe"}]
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, async_client(d) as client:
            message = await client.messages.create(
                model=MOCK_MODEL, max_tokens=16, messages=[{"role": "user", "content": content}]
            )
    assert message.content[0].text == "describe"  # type: ignore[union-attr]
