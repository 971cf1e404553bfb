"""SSE framing details: one ``data:`` line per event whatever the text holds, and keep-alives that clients skip."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest
from openai import OpenAI, Stream
from openai.types.chat import ChatCompletionChunk

from adapters.errors import Unavailable
from adapters.types import ChoiceEnd, Done, Event, StopReason, Text, Token, TokenLogprob, ToolUse, Usage
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


def _framed_one_by_one(events: list[Event], *, model: str = "m", completion_id: str = "chatcmpl-f") -> list[bytes]:
    """What each event's chunk dicts frame to (`sse_event` of each chunk of a fresh `ChunkEncoder`)."""
    chunks = ChunkEncoder(model, completion_id, 7, include_usage=True)
    return [b"".join(sse_event(chunk) for chunk in chunks.encode(event)) for event in events]


TRICKY = ['"content":"x"', "a\nb", '\\"', "\u2028é日本", "", "}]}", "\x00"]


@pytest.mark.parametrize("model", ["m", 'tricky","content":"', "\u00e9\n"])
def test_the_chat_sse_encoder_frames_repeated_content_exactly_like_its_chunks(client: OpenAI, model: str) -> None:
    """Content after a choice's first is framed from a template: byte for byte what the chunk dicts give,
    whatever the text or the model id hold, and the SDK reads every piece back."""
    events: list[Event] = [Text("first"), *(Text(t) for t in TRICKY), Done(StopReason.END, Usage(1, 8))]
    encoder = ChatSSEEncoder(ChunkEncoder(model, "chatcmpl-f", 7, include_usage=True))
    wire = [encoder.encode(event) for event in events]
    assert wire == _framed_one_by_one(events, model=model)
    received = list(sdk_stream(client, b"".join([*wire, encoder.end()])))
    assert [c.choices[0].delta.content for c in received if c.choices] == ["", "first", *TRICKY, None]


def test_the_chat_sse_encoder_templates_each_choice_and_v1_tokens_apart() -> None:
    record = TokenLogprob("b", -0.5, (), b"b")
    events: list[Event] = [
        Token("a"), Token("b"),  # v1 tokens are choice 0's content
        Text("c", choice=2), Text("d", choice=2), Text("e", choice=1), Text("f"),
        Text("g", choice=1, logprobs=(record,)), Text("h", choice=1),  # log probabilities: no template
        ToolUse("call_1", "f", "{}", choice=3), Text("i", choice=3),
        Done(StopReason.END, Usage(1, 9), choices=(ChoiceEnd(0, StopReason.END), ChoiceEnd(1, StopReason.END))),
    ]  # fmt: skip
    encoder = ChatSSEEncoder(ChunkEncoder("m", "chatcmpl-f", 7, include_usage=True))
    assert [encoder.encode(event) for event in events] == _framed_one_by_one(events)


def test_the_chat_sse_encoder_refuses_content_after_done_as_the_chunks_do() -> None:
    encoder = ChatSSEEncoder(ChunkEncoder("m", "chatcmpl-f", 7, include_usage=False))
    encoder.encode(Text("a"))
    encoder.encode(Text("b"))
    encoder.encode(Done(StopReason.END, Usage(1, 2)))
    with pytest.raises(RuntimeError, match="event after Done"):
        encoder.encode(Text("c"))
