"""``POST /v1/responses`` through the official openai SDK, async and sync, streaming and not, with tools."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import trio

from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


async def test_create_returns_a_response_whose_output_text_the_sdk_computes() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            response = await client.responses.create(
                model=MOCK_MODEL, input="hello big world", instructions="be brief", temperature=0.5
            )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.error is None
    assert response.output_text == "hello big world"
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 3, 8)
    assert (response.instructions, response.temperature, response.model) == ("be brief", 0.5, MOCK_MODEL)


async def test_max_output_tokens_ends_incomplete() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            response = await client.responses.create(model=MOCK_MODEL, input="one two three", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two "


async def test_stream_helper_and_final_response() -> None:
    with trio.fail_after(10):
        async with (
            running_daemon(mock_config()) as d,
            d.client() as client,
            client.responses.stream(model=MOCK_MODEL, input="hello big world") as stream,
        ):
            deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
            final = await stream.get_final_response()
    assert deltas == ["hello ", "big ", "world"]
    assert final.output_text == "hello big world" and final.status == "completed"


async def test_raw_stream_events_are_typed_in_order_with_sequence_numbers() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            raw = await http.post("/v1/responses", json={"model": MOCK_MODEL, "input": "hi there", "stream": True})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in raw.text.split("\n\n") if b]
    names = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    events = [json.loads(b.split("\n")[1].removeprefix("data: ")) for b in blocks]
    assert names == [e["type"] for e in events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(10))
    assert "[DONE]" not in raw.text


async def test_tool_call_round_trip() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            first = await client.responses.create(
                model=MOCK_MODEL, input="weather in Oslo?", tools=[WEATHER], tool_choice="required"
            )
            [call] = first.output
            assert call.type == "function_call" and call.name == "get_weather"
            assert json.loads(call.arguments) == {"city": ""}
            assert first.tools[0].name == "get_weather"
            follow_up: list[Any] = [
                {"role": "user", "content": "weather in Oslo?"},
                *[item.model_dump(exclude_none=True) for item in first.output],
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny and 20C"},
                {"role": "user", "content": "thanks"},
            ]
            second = await client.responses.create(model=MOCK_MODEL, input=follow_up, tools=[WEATHER])
    assert second.output_text == "thanks"


async def test_streamed_tool_call_through_the_helper() -> None:
    with trio.fail_after(10):
        async with (
            running_daemon(mock_config()) as d,
            d.client() as client,
            client.responses.stream(
                model=MOCK_MODEL,
                input="weather?",
                tools=[WEATHER],
                tool_choice={"type": "function", "name": "get_weather"},
            ) as stream,
        ):
            done = [e async for e in stream if e.type == "response.function_call_arguments.done"]
            final = await stream.get_final_response()
    assert [json.loads(e.arguments) for e in done] == [{"city": ""}]
    [call] = final.output
    assert call.type == "function_call" and call.status == "completed"


async def test_unsupported_fields_are_400_naming_the_field() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as info:
                await client.responses.create(model=MOCK_MODEL, input="x", previous_response_id="resp_1")
            with pytest.raises(openai.BadRequestError) as hosted:
                await client.responses.create(model=MOCK_MODEL, input="x", tools=[{"type": "web_search"}])
            with pytest.raises(openai.NotFoundError) as missing:
                await client.responses.create(model="nope", input="x")
    assert info.value.code == "unsupported_parameter" and info.value.param == "previous_response_id"
    assert hosted.value.code == "unsupported_parameter" and hosted.value.param == "tools[0].type"
    assert missing.value.code == "model_not_found"


async def test_stored_responses_are_404() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.client() as client:
            with pytest.raises(openai.NotFoundError) as info:
                await client.responses.retrieve("resp_123")
            with pytest.raises(openai.NotFoundError):
                await client.responses.delete("resp_123")
            with pytest.raises(openai.NotFoundError):
                await client.responses.input_items.list("resp_123")
    assert info.value.code == "response_not_found"


async def test_mid_stream_failure_is_response_failed_and_the_end() -> None:
    config = mock_config(fail="mid-stream", fail_after_tokens=2)
    with trio.fail_after(10):
        async with running_daemon(config) as d, d.client() as client:
            stream = await client.responses.create(model=MOCK_MODEL, input="one two three four", stream=True)
            events = [event async for event in stream]
    assert [e.type for e in events][-1] == "response.failed"
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error is not None
    assert failed.response.error.code == "server_error"
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["one ", "two "]


async def test_pre_stream_failure_is_a_status() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config(fail="pre-stream")) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as info:
                await client.responses.create(model=MOCK_MODEL, input="x", stream=True)
    assert info.value.status_code == 502


def sync_round_trip(base_url: str) -> tuple[str, list[str], str]:
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
        plain = client.responses.create(model=MOCK_MODEL, input="sync hello")
        with client.responses.stream(model=MOCK_MODEL, input="sync stream") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
    return plain.output_text, deltas, final.output_text


async def test_sync_client() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            result = await trio.to_thread.run_sync(sync_round_trip, d.base_url)
    assert result == ("sync hello", ["sync ", "stream"], "sync stream")


async def test_get_without_upgrade_is_not_a_crash() -> None:
    with trio.fail_after(10):
        async with running_daemon(mock_config()) as d, d.http() as http:
            response = await http.get("/v1/responses")
    assert 400 <= response.status_code < 500
    assert isinstance(response, httpx.Response)
