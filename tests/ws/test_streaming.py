"""Streaming over ``/v1/ws``: the same chunks as SSE, a done frame with finish_reason and usage, and several
requests at once on one socket, each admitted through the same queue as HTTP."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import trio
from openai.types.chat import ChatCompletionChunk

from tests.daemon_harness import mock_config, running_daemon, wait_until

from .wsclient import chat_body, connect, create, next_frame, text_of, until_terminal


async def sse_chunks(d: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunk objects ``POST /v1/chat/completions`` streams for ``body``, decoded."""
    chunks = []
    async with d.http() as http, http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line.removeprefix("data: ")))
    return chunks


def without_ids(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k not in ("id", "created")} for c in chunks]


async def test_one_request_streams_the_sse_chunks_then_done() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            await ws.send_message(create("a", "hello big world"))
            frames = (await until_terminal(ws, "a"))["a"]
            chunks, done = frames[:-1], frames[-1]
            assert all(f["type"] == "chat.completion.chunk" for f in chunks)
            assert text_of(chunks) == "hello big world"
            assert without_ids([f["chunk"] for f in chunks]) == without_ids(
                await sse_chunks(d, chat_body("hello big world"))
            )
            for f in chunks:
                ChatCompletionChunk.model_validate(f["chunk"])  # what the openai SDK accepts as a chunk
            assert len({f["chunk"]["id"] for f in chunks}) == 1
            assert chunks[-1]["chunk"]["choices"][0]["finish_reason"] == "stop"
            assert done == {
                "type": "chat.completion.done",
                "id": "a",
                "finish_reason": "stop",
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": 3,
                    "total_tokens": 6,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
            role = {"role": "assistant", "content": "", "refusal": None}
            assert chunks[0]["chunk"]["choices"][0]["delta"] == role


async def test_include_usage_adds_the_usage_chunk_as_sse_does() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            options = {"stream_options": {"include_usage": True}}
            await ws.send_message(create("u", "one two", **options))
            frames = (await until_terminal(ws, "u"))["u"]
            chunks = [f["chunk"] for f in frames[:-1]]
            assert chunks[-1]["choices"] == []
            assert chunks[-1]["usage"] == {
                "prompt_tokens": 2,
                "completion_tokens": 2,
                "total_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            }
            assert all("usage" not in c for c in chunks[:-1])
            assert without_ids(chunks) == without_ids(await sse_chunks(d, chat_body("one two", **options)))


async def test_stream_false_in_the_request_is_ignored() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            await ws.send_message(create("s", "still streamed", stream=False))
            frames = (await until_terminal(ws, "s"))["s"]
            # the role chunk, two content chunks, the finish chunk, done
            assert [f["type"] for f in frames] == ["chat.completion.chunk"] * 4 + ["chat.completion.done"]


async def test_finish_reason_length_and_tool_calls_reach_the_done_frame() -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            await ws.send_message(create("len", "a b c d e", max_tokens=2))
            await ws.send_message(create("tool", "x", tools=[tool], tool_choice="required"))
            frames = await until_terminal(ws, "len", "tool")
            assert frames["len"][-1]["finish_reason"] == "length"
            assert text_of(frames["len"]) == "a b "
            assert frames["tool"][-1]["finish_reason"] == "tool_calls"
            assert frames["tool"][0]["chunk"]["choices"][0]["delta"]["content"] is None  # role chunk before a call
            call = frames["tool"][1]["chunk"]["choices"][0]["delta"]["tool_calls"][0]
            assert call["function"] == {"name": "lookup", "arguments": "{}"}


async def test_several_requests_run_at_once_on_one_socket(autojump_clock: trio.abc.Clock) -> None:
    words = " ".join(f"w{i}" for i in range(10))
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, active=4)) as d, connect(d) as ws:
            for frame_id in ("a", "b", "c"):
                await ws.send_message(create(frame_id, f"{frame_id} {words}"))
            seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "c": []}
            while not all(seen.values()):  # every request has streamed its first chunk...
                frame = await next_frame(ws)
                seen[frame["id"]].append(frame)
            assert d.admission().active == 3  # ...while all three hold a slot of the shared queue
            assert d.backend_status()["active"] == 3
            rest = await until_terminal(ws, "a", "b", "c")
            for frame_id in ("a", "b", "c"):
                frames = seen[frame_id] + rest[frame_id]
                assert text_of(frames) == f"{frame_id} {words}"
                assert frames[-1]["type"] == "chat.completion.done"
            assert d.backend_status()["completed"] == 3
            assert d.admission().active == 0
            assert d.admission().admitted_total == 3


async def test_requests_on_a_socket_share_the_admission_queue_with_http(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, active=1, queue=1)) as d, connect(d) as ws:
            await ws.send_message(create("first", "one two three"))
            assert (await next_frame(ws))["id"] == "first"  # holds the only slot
            await ws.send_message(create("second", "four"))
            await wait_until(lambda: d.admission().queued == 1)  # waits in the one queue place
            async with d.client() as client:  # an HTTP request finds the same queue full
                with pytest.raises(openai.RateLimitError) as caught:
                    await client.chat.completions.create(
                        model="mock-echo", messages=[{"role": "user", "content": "x"}]
                    )
                assert caught.value.code == "queue_full"
            frames = await until_terminal(ws, "first", "second")
            assert text_of(frames["second"]) == "four"
            assert d.admission().rejected_total == 1


async def test_a_finished_id_can_be_reused() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            for content in ("first answer", "second answer"):
                await ws.send_message(create("same", content))
                frames = (await until_terminal(ws, "same"))["same"]
                assert text_of(frames) == content
                assert frames[-1]["type"] == "chat.completion.done"
