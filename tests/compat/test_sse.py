"""SSE framing details: one ``data:`` line per event whatever the text holds, and keep-alives that clients skip."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletionChunk

from adapters.errors import Unavailable
from adapters.types import Done, StopReason, Text, Usage
from compat.openai.chat_response import ChunkEncoder
from compat.openai.sse import SSE_DONE, SSE_KEEPALIVE, ChatSSEEncoder, sse_error, sse_event


def test_event_is_one_compact_data_line() -> None:
    assert sse_event({"a": [1, None], "b": "x"}) == b'data: {"a":[1,null],"b":"x"}\n\n'


@pytest.mark.parametrize(
    "text", ["line\nbreak", "carriage\rreturn", "crlf\r\n", "data: [DONE]\n\n", "\u2028\x00é"]
)
def test_text_never_breaks_the_framing(text: str) -> None:
    event = sse_event({"content": text})
    assert event.startswith(b"data: ")
    assert event.endswith(b"\n\n")
    assert b"\n" not in event[:-2]
    assert b"\r" not in event


def test_constants() -> None:
    assert SSE_DONE == b"data: [DONE]\n\n"
    assert SSE_KEEPALIVE == b": keep-alive\n\n"


@pytest.fixture
def client() -> Iterator[OpenAI]:
    with OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1", _strict_response_validation=True) as sdk:
        yield sdk


def test_keepalives_between_chunks_are_invisible_to_the_sdk(client: OpenAI) -> None:
    encoder = ChunkEncoder("m", "chatcmpl-k", 1, include_usage=False)
    parts = [SSE_KEEPALIVE]
    for event in [Text("a\n"), Text("b"), Done(StopReason.END, Usage(1, 2))]:
        parts += [sse_event(chunk) for chunk in encoder.encode(event)] + [SSE_KEEPALIVE]
    wire = b"".join([*parts, SSE_DONE])
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    chunks = list(
        Stream(
            cast_to=ChatCompletionChunk,
            response=httpx2.Response(200, content=wire, request=request),
            client=client,
        )
    )
    assert [c.choices[0].delta.content for c in chunks] == ["", "a\n", "b", None]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]


def sdk_stream(client: OpenAI, wire: bytes) -> Stream[ChatCompletionChunk]:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, content=wire, request=request)
    return Stream(cast_to=ChatCompletionChunk, response=response, client=client)


def test_the_chat_sse_encoder_frames_each_events_chunks_then_done(client: OpenAI) -> None:
    chunks = ChunkEncoder("m", "chatcmpl-e", 1, include_usage=True)
    encoder = ChatSSEEncoder(ChunkEncoder("m", "chatcmpl-e", 1, include_usage=True))
    events = [Text("a"), Text("b"), Done(StopReason.END, Usage(1, 2))]
    wire = [encoder.encode(event) for event in events]
    assert wire == [b"".join(sse_event(chunk) for chunk in chunks.encode(event)) for event in events]
    assert encoder.end() == SSE_DONE
    received = list(sdk_stream(client, b"".join([*wire, encoder.end()])))
    assert [c.choices[0].delta.content for c in received if c.choices] == ["", "a", "b", None]
    assert received[-1].usage is not None and received[-1].usage.completion_tokens == 2


def test_the_chat_sse_encoders_error_event_is_the_one_the_sdk_raises(client: OpenAI) -> None:
    encoder = ChatSSEEncoder(ChunkEncoder("m", "chatcmpl-e", 1, include_usage=False))
    failure = Unavailable("upstream went away")
    assert encoder.error(failure, "req-1") == sse_error(failure, "req-1")
    stream = sdk_stream(client, encoder.encode(Text("a")) + encoder.error(failure, "req-1"))
    with pytest.raises(openai.APIError, match="upstream went away"):
        list(stream)
