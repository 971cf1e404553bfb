"""The sans-IO parts of the ``openai`` backend: SSE framing fed whole and byte by byte, chunk translation
(tool-call pieces, reasoning, usage, stop reasons, malformed shapes), non-streaming answers translated into the
same events, the request body, error bodies, and config validation."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import trio

from adapters.backend import BackendConfigError
from adapters.errors import InvalidRequest, Unavailable
from adapters.openai_upstream import OpenAIUpstreamBackend
from adapters.openai_upstream.client import Endpoint
from adapters.openai_upstream.errors import error_object, status_failure
from adapters.openai_upstream.options import parse_options, read_api_key
from adapters.openai_upstream.translate_request import chat_body
from adapters.openai_upstream.translate_stream import ChunkTranslator, SseDecoder, SseEvent, completion_events
from adapters.retry_after import retry_after_seconds as retry_after_s
from adapters.types import (
    Done,
    Event,
    MessageV2,
    ResolvedV2,
    Role,
    StopReason,
    Text,
    TextBlock,
    Thinking,
    ToolUse,
    Usage,
)

STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"h\xc3\xa9"}}]}\r\n\r\n'
    b"event: message\ndata: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)


def test_sse_framing_is_the_same_fed_whole_or_byte_by_byte() -> None:
    whole = SseDecoder().feed(STREAM)
    decoder = SseDecoder()
    pieces = [event for i in range(len(STREAM)) for event in decoder.feed(STREAM[i : i + 1])]
    assert pieces == whole
    assert whole == [
        SseEvent('{"choices":[{"index":0,"delta":{"role":"assistant","content":"hé"}}]}'),
        SseEvent("line one\nline two"),
        SseEvent("[DONE]"),
    ]


def chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}]}


def call(index: int, **fields: Any) -> dict[str, Any]:
    function = {k: fields[k] for k in ("name", "arguments") if k in fields}
    return chunk(
        {
            "tool_calls": [
                {"index": index, **({"id": fields["id"]} if "id" in fields else {}), "function": function}
            ]
        }
    )


def run(*chunks: dict[str, Any]) -> list[Any]:
    translator = ChunkTranslator()
    events = [event for c in chunks for event in translator.feed(c)]
    return events + translator.finish()


def test_text_reasoning_and_usage() -> None:
    events = run(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "hmm"}),
        chunk({"reasoning": "more"}),
        chunk({"content": "Hi"}),
        chunk({}, "length"),
        {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    )
    assert events == [Thinking("hmm"), Thinking("more"), Text("Hi"), Done(StopReason.MAX_TOKENS, Usage(7, 3))]


def test_tool_call_pieces_become_whole_calls_as_soon_as_each_is_complete() -> None:
    translator = ChunkTranslator()
    assert translator.feed(call(0, id="a", name="f", arguments='{"x"')) == []
    assert translator.feed(call(0, name="f", arguments=": 1}")) == []  # a name repeated on a piece is not doubled
    assert translator.feed(call(1, id="b", name="g")) == [ToolUse("a", "f", '{"x": 1}')]
    assert translator.feed(chunk({}, "tool_calls")) == [ToolUse("b", "g", "{}")]
    assert translator.finish() == [Done(StopReason.TOOL_USE, Usage(completion_tokens=3))]


def test_stop_reasons() -> None:
    assert run(chunk({"content": "x"}, "stop"))[-1].stop_reason is StopReason.END
    assert run(chunk({"content": "x"}, "stop", stop_reason="END"))[-1].stop_reason is StopReason.STOP_SEQUENCE
    assert run(chunk({"content": "x"}, "content_filter"))[-1].stop_reason is StopReason.END
    assert run(call(0, id="a", name="f"), chunk({}, "stop"))[-1].stop_reason is StopReason.TOOL_USE
    # No usage from the upstream: completion tokens are the content chunks, prompt tokens unknown (0).
    assert run(chunk({"content": "a"}), chunk({"content": "b"}), chunk({}, "stop"))[-1].usage == Usage(0, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"choices": {"0": {}}}', "'choices' is not an array"),
        ('{"choices": [{"delta": [1]}]}', "'delta' that is not an object"),
        ('{"choices": [{"delta": {"tool_calls": {}}}]}', "'tool_calls' is not an array"),
        ('{"choices": [{"delta": {"tool_calls": [1]}}]}', "a tool call that is not an object"),
        ('{"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}', "index that is not an integer"),
        ('{"choices": [{"delta": {"tool_calls": [{"function": 1}]}}]}', "'function' that is not an object"),
        (
            '{"choices": [{"delta": {"tool_calls": [{"function": {}}]}, "finish_reason": "stop"}]}',
            "without a function name",
        ),
        (
            '{"choices": [{"delta": {"tool_calls": [{"function": {"name": "f", "arguments": "[]"}}]}, '
            '"finish_reason": "stop"}]}',
            "not a JSON object",
        ),
        ('{"error": {"message": "CUDA OOM"}}', "failed mid-stream: CUDA OOM"),
        ('{"error": "plain"}', "failed mid-stream: no message"),
    ],
)
def test_malformed_chunks_are_upstream_errors(data: str, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        ChunkTranslator().feed_data(data)


def test_other_choices_are_not_mixed_in() -> None:
    assert run({"choices": [{"index": 1, "delta": {"content": "no"}}, "junk"]}, chunk({"content": "yes"}, "stop"))[
        :1
    ] == [Text("yes")]


def answer(message: dict[str, Any], finish: str | None = "stop", **fields: Any) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    return json.dumps({"object": "chat.completion", "choices": [choice], **fields}).encode()


def test_a_whole_answer_is_the_events_its_stream_would_have_been() -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": [1, {"y": "\u00e9"}]}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
        {"type": "function", "function": {"name": "h", "arguments": "{}"}, "index": 0},  # index: position wins
    ]
    events = completion_events(
        answer(
            {"reasoning_content": "hmm", "content": "Hi", "tool_calls": calls},
            "tool_calls",
            usage={"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16},
        )
    )
    assert events[:4] == [Thinking("hmm"), Text("Hi"), ToolUse("a", "f", '{"x": [1, {"y": "\u00e9"}]}'),
                          ToolUse("b", "g", "{}")]  # fmt: skip
    assert (events[4].name, events[4].arguments, events[4].id.startswith("call_")) == ("h", "{}", True)  # type: ignore[union-attr]
    assert events[5:] == [Done(StopReason.TOOL_USE, Usage(7, 9))]


def test_a_whole_answers_stop_reasons_and_missing_usage() -> None:
    assert completion_events(answer({"reasoning": "r", "content": ""}, "length")) == [
        Thinking("r"),
        Done(StopReason.MAX_TOKENS, Usage(0, 0)),  # no usage: unknown, not counted from the content
    ]
    stopped = json.loads(answer({"content": "x"}))
    stopped["choices"][0]["stop_reason"] = "END"
    assert completion_events(json.dumps(stopped).encode())[-1].stop_reason is StopReason.STOP_SEQUENCE  # type: ignore[union-attr]
    assert completion_events(answer({"content": "x"}, None)) == [Text("x"), Done(StopReason.END, Usage())]
    assert completion_events(answer({"content": "x"}, error=None))[0] == Text("x")  # a null "error" is none
    other = {"choices": [{"index": 1, "message": {"content": "no"}}, {"message": {"content": "yes"}}]}
    assert completion_events(json.dumps(other).encode())[0] == Text("yes")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "a body that is not JSON"),
        (b"\xff\xfe", "a body that is not JSON"),
        (b"", "a body that is not JSON"),
        (b"[1]", "a body that is not a JSON object"),
        (b"{}", "'choices' is not an array"),
        (b'{"choices": []}', "an answer with no choice"),
        (b'{"choices": [1, {"index": 2}]}', "an answer with no choice"),
        (b'{"choices": [{"delta": {"content": "a chunk"}}]}', "a choice whose 'message' is not an object"),
        (answer({"tool_calls": {}}), "'tool_calls' is not an array"),
        (answer({"tool_calls": [{"function": {"arguments": "{}"}}]}), "a tool call without a function name"),
        (answer({"tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}), "not a JSON object"),
        (b'{"error": {"message": "CUDA OOM"}, "choices": []}', "the upstream server failed: CUDA OOM"),
        (b'{"error": "plain"}', "the upstream server failed: no message"),
    ],
)
def test_malformed_whole_answers_are_upstream_errors(body: bytes, message: str) -> None:
    with pytest.raises(Unavailable, match=message):
        completion_events(body)


def test_the_request_body_streams_only_for_a_client_that_streams() -> None:
    req = ResolvedV2(model="m", messages=(MessageV2(Role.USER, (TextBlock("hi"),)),))
    assert req.stream
    streamed = chat_body(req, "up")
    assert (streamed["stream"], streamed["stream_options"]) == (True, {"include_usage": True})
    whole = chat_body(replace(req, stream=False), "up")
    assert whole == {"model": "up", "messages": [{"role": "user", "content": "hi"}], "stream": False}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "m", "code": "c"}}', {"message": "m", "code": "c"}),
        (b'{"error": "just text"}', {"message": "just text"}),
        (
            b'{"object": "error", "message": "m", "type": "BadRequestError", "code": 400}',
            {"message": "m", "type": "BadRequestError", "code": 400},
        ),
        (b'{"detail": [{"msg": "field required"}]}', {"message": json.dumps([{"msg": "field required"}])}),
        (b'{"detail": "Not Found"}', {"message": "Not Found"}),
        (b"<html>Bad Gateway</html>", {"message": "<html>Bad Gateway</html>"}),
        (b"", {"message": "the upstream server sent no error message"}),
    ],
)
def test_error_bodies_of_every_shape_become_an_error_object(body: bytes, expected: dict[str, Any]) -> None:
    assert error_object(body) == expected


def test_status_mapping() -> None:
    assert status_failure(400, {}, b"").error.http_status == 400
    limited = status_failure(429, {"retry-after-ms": "1500"}, b"").error
    assert (limited.http_status, limited.code, limited.retry_after) == (429, "upstream_rate_limited", 1.5)
    refused = status_failure(403, {}, b'{"error": {"message": "bad key sk-1***", "code": "invalid_api_key"}}')
    assert (refused.error.http_status, refused.failover, refused.marks_down) == (403, False, False)
    assert "sk-1" not in refused.error.message
    assert status_failure(504, {}, b"").failover
    odd = status_failure(302, {}, b"")
    assert (odd.error.http_status, odd.failover) == (502, False)


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({"retry-after-ms": "x", "retry-after": "2"}) == 2.0
    assert retry_after_s({}) is None


def test_options() -> None:
    options = parse_options(
        {"base_urls": ["http://a:8000/v1/", "https://b/v1"], "api_key_env": "K", "embed": True}
    )
    assert options.base_urls == ("http://a:8000/v1", "https://b/v1")
    assert read_api_key(options, {"K": " sk-1 "}) == "sk-1"
    assert options.auth_source() == "env K"
    assert parse_options({"base_urls": ["http://a"], "api_key": "sk-2"}).auth_source() == "inline api_key"
    assert "sk-2" not in repr(parse_options({"base_urls": ["http://a"], "api_key": "sk-2"}))
    assert read_api_key(parse_options({"base_urls": ["http://a"]})) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "base_urls must be a non-empty list"),
        ({"base_urls": ["ftp://a"]}, r"base_urls\[0\] must be an http"),
        ({"base_urls": ["http://a?x=1"]}, "must not carry a query"),
        ({"base_urls": ["http://u:p@a"]}, "must not carry a query, fragment or credentials"),
        ({"base_urls": ["http://a", "http://a/"]}, "listed twice"),
        ({"base_urls": ["http://a"], "api_key": "k", "api_key_env": "K"}, "not both"),
        ({"base_urls": ["http://a"], "api_key_env": "K=v"}, "NAME of an environment variable"),
        ({"base_urls": ["http://a"], "api_key": " "}, "non-empty string"),
        ({"base_urls": ["http://a"], "upstream_model": ""}, "upstream_model"),
        ({"base_urls": ["http://a"], "embed": "yes"}, "embed must be true or false"),
        ({"base_urls": ["http://a"], "read_timeout_s": 0}, "read_timeout_s must be a positive number"),
        ({"base_urls": ["http://a"], "retries": 3}, "unknown option"),
    ],
)
def test_bad_options_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(BackendConfigError, match=message):
        parse_options(table)


def test_a_missing_key_variable_is_named_never_a_value() -> None:
    with pytest.raises(BackendConfigError, match="FLEET_KEY"):
        read_api_key(parse_options({"base_urls": ["http://a"], "api_key_env": "FLEET_KEY"}), {})


async def test_a_raw_text_prompt_is_refused_with_400_before_any_upstream_is_asked() -> None:
    backend = OpenAIUpstreamBackend(parse_options({"base_urls": ["http://127.0.0.1:9/v1"]}))  # never asked
    send, _receive = trio.open_memory_channel[Event](1)
    with pytest.raises(InvalidRequest) as caught:
        await backend.generate_v2(ResolvedV2(model="m", messages=(), prompt="Once upon"), send)
    assert (caught.value.http_status, caught.value.code, caught.value.param) == (
        400,
        "unsupported_parameter",
        "model",
    )
    assert not backend.capabilities().raw_prompt


@pytest.mark.parametrize(
    ("base", "host"),
    [
        ("http://127.0.0.1:8000/v1", b"127.0.0.1:8000"),
        ("http://[::1]:8000/v1", b"[::1]:8000"),
        ("https://api.example.com/v1", b"api.example.com"),
        ("http://fleet.internal:80/v1", b"fleet.internal"),
    ],
)
def test_an_endpoint_prepares_its_host_header_and_targets_once(base: str, host: bytes) -> None:
    endpoint = Endpoint(base, {"Authorization": "Bearer sk-1"})
    assert endpoint.headers == [(b"Host", host), (b"Authorization", b"Bearer sk-1")]
    head = endpoint.prepare("GET", "/models")
    assert head.target == b"/v1/models"
    assert endpoint.prepare("GET", "/models") is head
    assert head.encode(None) == b"GET /v1/models HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer sk-1\r\n\r\n" % host
