"""SSE batching (proxy/sse.py ``sse_body`` over proxy/pipeline.py's batches): events a fast producer has already
buffered go out in one body piece, and the stream a client reads is exactly what it was with one write per
event.

The daemon tests stream a long fixed reply from the mock with no token delay (the P2 benchmark's load) through
the real SDK over a real socket. The direct tests drive ``sse_body`` with a real `Generation` whose producer
has buffered everything before the body runs, so the pieces it yields are known exactly.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import openai
import pytest
import trio
import trio.testing

from adapters import Done, Event, StopReason, Token, Unavailable, Usage
from adapters.stream import start_event_stream
from compat.openai.chat_response import ChunkEncoder
from compat.openai.sse import ChatSSEEncoder
from proxy.inflight import RequestInfo
from proxy.pipeline import BATCH as SSE_BATCH
from proxy.pipeline import Generation
from proxy.sse import SSE_BATCH_BYTES, sse_body
from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon

REPLY = [f"word{i} " for i in range(3000)]
HELLO: list[Any] = [{"role": "user", "content": "hello"}]


def sse_payloads(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order (every event must be a ``data:`` line)."""
    events = [event for event in body.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events), events
    return [event.removeprefix("data: ") for event in events]


async def test_a_fast_long_stream_reaches_the_sdk_whole_and_in_order() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(reply=REPLY, token_delay_ms=0)) as d, d.client() as client:
            stream = await client.chat.completions.create(
                model=MOCK_MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            plain = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, stream=True)
            plain_chunks = [chunk async for chunk in plain]
            assert d.admission().active == 0
    content = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    assert "".join(c for c in content if c) == "".join(REPLY)
    assert [c for c in content if c] == REPLY, "one chunk per token, in order"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [chunk.choices[0].delta.role for chunk in chunks[1:] if chunk.choices] == [None] * (len(chunks) - 2)
    reasons = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert reasons == [None] * (1 + len(REPLY)) + ["stop"]  # the role chunk, the tokens, the finish
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(REPLY)
    assert len({chunk.id for chunk in chunks}) == 1
    assert "".join(chunk.choices[0].delta.content or "" for chunk in plain_chunks) == "".join(REPLY)
    assert all(chunk.usage is None and chunk.choices for chunk in plain_chunks)


async def test_a_fast_long_stream_ends_with_one_done_on_the_wire() -> None:
    body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}
    with trio.fail_after(30):
        async with running_daemon(mock_config(reply=REPLY, token_delay_ms=0)) as d, d.http() as http:
            raw = await http.post("/v1/chat/completions", json=body)
    assert raw.status_code == 200
    payloads = sse_payloads(raw.text)
    assert payloads[-1] == "[DONE]"
    assert payloads.count("[DONE]") == 1
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "".join(REPLY)
    assert len(chunks) == 1 + len(REPLY) + 1  # the role chunk, the tokens and one finish chunk, no usage chunk


async def test_a_failure_in_a_fast_stream_gives_the_tokens_before_it_one_error_and_no_done() -> None:
    fail_after = 700
    body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}
    config = mock_config(reply=REPLY, token_delay_ms=0, fail="mid-stream", fail_after_tokens=fail_after)
    with trio.fail_after(30):
        async with running_daemon(config) as d:
            async with d.http() as http:
                raw = await http.post("/v1/chat/completions", json=body)
            async with d.client() as client:
                stream = await client.chat.completions.create(model=MOCK_MODEL, messages=HELLO, stream=True)
                received: list[str | None] = []
                with pytest.raises(openai.APIError) as caught:
                    async for chunk in stream:
                        received.append(chunk.choices[0].delta.content)
            assert d.admission().active == 0
    assert received == ["", *REPLY[:fail_after]]
    assert "mid-stream" in caught.value.message
    payloads = sse_payloads(raw.text)
    assert "[DONE]" not in payloads
    events = [json.loads(p) for p in payloads]
    assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["", *REPLY[:fail_after]]
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    assert events[-1]["error"]["code"] == "upstream_error"


async def body_pieces(events: list[Event], failure: Exception | None = None) -> tuple[list[bytes], RequestInfo]:
    """The pieces ``sse_body`` yields for a producer that has buffered ``events`` (then ``failure``)."""

    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for event in events:
            await send.send(event)
        if failure is not None:
            raise failure

    info = RequestInfo(request_id="req_batching", method="POST", path="/v1/chat/completions")
    encoder = ChatSSEEncoder(ChunkEncoder(MOCK_MODEL, "chatcmpl-batching", 1, include_usage=True))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce, buffer=len(events) + 1))
            await trio.testing.wait_all_tasks_blocked()  # everything is buffered before the body runs
            await generation.wait_first_event()
            async with aclosing(sse_body(generation, encoder, info)) as body:
                pieces = [piece async for piece in body]
    return pieces, info


def tokens(n: int) -> list[Event]:
    return [Token(f"t{i} ") for i in range(n)]


def contents(pieces: list[bytes]) -> list[str]:
    return [
        json.loads(p)["choices"][0]["delta"].get("content") or ""
        for p in sse_payloads(b"".join(pieces).decode())
        if p != "[DONE]" and json.loads(p).get("choices")
    ]


async def test_buffered_events_are_joined_into_one_piece_and_done_follows() -> None:
    done = Done(StopReason.END, Usage(1, 5))
    pieces, _ = await body_pieces([*tokens(5), done])
    assert len(pieces) == 2
    assert pieces[1] == b"data: [DONE]\n\n"
    chunks = [json.loads(p) for p in sse_payloads(pieces[0].decode())]
    assert [c["choices"][0]["delta"] for c in chunks[:6]] == [
        {"role": "assistant", "content": "", "refusal": None},
        *({"content": f"t{i} "} for i in range(5)),
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:7]] == [None] * 6 + ["stop"]
    assert chunks[7]["choices"] == [] and chunks[7]["usage"]["completion_tokens"] == 5
    assert len(chunks) == 8


async def test_a_batch_holds_at_most_sse_batch_buffered_events_after_the_awaited_one() -> None:
    n = 2 * SSE_BATCH + 10
    pieces, _ = await body_pieces([*tokens(n), Done(StopReason.END, Usage(1, n))])
    sizes = [len(sse_payloads(piece.decode())) for piece in pieces]
    # the role chunk and 1 + 64 tokens, 1 + 64 tokens, the last 8 tokens with the finish and usage chunks, [DONE]
    assert sizes == [1 + SSE_BATCH + 1, SSE_BATCH + 1, n - 2 * (SSE_BATCH + 1) + 2, 1]
    assert contents(pieces) == ["", *(f"t{i} " for i in range(n)), ""]


async def test_a_batch_stops_growing_at_sse_batch_bytes() -> None:
    """Big events are batched only up to the byte limit: each write must fit a slow reader's write timeout."""
    big = [Token(f"{i}" * (SSE_BATCH_BYTES // 2)) for i in range(5)]
    pieces, _ = await body_pieces([*big, Done(StopReason.END, Usage(1, 5))])
    # each piece takes events until it holds SSE_BATCH_BYTES: two of these (the first after the role chunk),
    # then one and the finish and usage chunks
    assert [len(sse_payloads(piece.decode())) for piece in pieces] == [3, 2, 3, 1]
    assert contents(pieces) == ["", *(token.text for token in big), ""]


async def test_a_failure_inside_a_batch_yields_the_chunks_before_it_then_one_error_event() -> None:
    pieces, info = await body_pieces(tokens(6), Unavailable("upstream went away"))
    payloads = sse_payloads(b"".join(pieces).decode())
    assert "[DONE]" not in payloads
    events = [json.loads(p) for p in payloads]
    assert [e["choices"][0]["delta"]["content"] for e in events[:-1]] == ["", *(f"t{i} " for i in range(6))]
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    assert set(events[-1]) == {"error"} and events[-1]["error"]["code"] == "upstream_error"
    assert info.ended_by == "error after streaming began: upstream_error"


async def test_a_slow_producer_is_not_waited_for_each_token_goes_out_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def produce(send: trio.MemorySendChannel[Event]) -> None:
        for event in [*tokens(3), Done(StopReason.END, Usage(1, 3))]:
            await trio.sleep(1)
            await send.send(event)

    info = RequestInfo(request_id="req_batching", method="POST", path="/v1/chat/completions")
    encoder = ChatSSEEncoder(ChunkEncoder(MOCK_MODEL, "chatcmpl-batching", 1, include_usage=False))
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            generation = Generation(start_event_stream(nursery, produce))
            await generation.wait_first_event()
            async with aclosing(sse_body(generation, encoder, info)) as body:
                pieces = [piece async for piece in body]
    assert [len(sse_payloads(piece.decode())) for piece in pieces] == [2, 1, 1, 1, 1]  # role chunk + t0 first
    assert contents(pieces) == ["", "t0 ", "t1 ", "t2 ", ""]
