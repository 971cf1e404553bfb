"""The WebSocket frame protocol, sans-IO: client frames parse to typed values or to a `FrameError` naming the
problem; engine events become the same chunk objects SSE carries, wrapped in frames."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.errors import Unavailable
from adapters.types import Done, StopReason, Text, Thinking, Token, ToolUse, Usage
from compat.errors import RequestCancelled, RequestTooLarge, RequestValidationError, TooManyRequests
from compat.openai.chat_request import parse_chat_request
from compat.openai.chat_response import ChunkEncoder
from compat.openai.errors import error_object
from compat.openai.sse import sse_event
from compat.openai.ws_protocol import (
    CancelFrame,
    CreateFrame,
    FrameEncoder,
    FrameError,
    chunk_frame,
    done_frame,
    error_frame,
    parse_client_frame,
)

LIMIT = 4096
BODY = {"model": "mock-echo", "messages": [{"role": "user", "content": "hello there"}]}


def _frame(**fields: Any) -> str:
    return json.dumps(fields, ensure_ascii=False)


def _create(frame_id: Any = "r1", **extra: Any) -> str:
    return _frame(type="chat.completion.create", id=frame_id, request=extra.pop("request", BODY), **extra)


# --- client frames that parse -----------------------------------------------------------------------------


def test_create_parses_the_body_exactly_as_http_does_but_always_streams() -> None:
    frame = parse_client_frame(_create("r1"), max_bytes=LIMIT)
    assert frame == CreateFrame("r1", parse_chat_request({**BODY, "stream": True}))
    assert frame.chat.stream is True
    assert frame.chat.model == "mock-echo"


@pytest.mark.parametrize("stream", [False, True, None])
def test_the_stream_field_inside_create_is_ignored(stream: bool | None) -> None:
    frame = parse_client_frame(_create(request={**BODY, "stream": stream}), max_bytes=LIMIT)
    assert isinstance(frame, CreateFrame)
    assert frame.chat.stream is True


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_options_include_usage_is_honoured(include_usage: bool) -> None:
    body = {**BODY, "stream_options": {"include_usage": include_usage}}
    frame = parse_client_frame(_create(request=body), max_bytes=LIMIT)
    assert isinstance(frame, CreateFrame)
    assert frame.chat.include_usage is include_usage


def test_cancel_parses() -> None:
    assert parse_client_frame(_frame(type="chat.completion.cancel", id="r9"), max_bytes=LIMIT) == CancelFrame("r9")


def test_unknown_extra_keys_are_ignored() -> None:
    frame = parse_client_frame(_frame(type="chat.completion.cancel", id="r9", event_id="e1"), max_bytes=LIMIT)
    assert frame == CancelFrame("r9")


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    base = _frame(type="chat.completion.cancel", id="r", pad="")
    text = _frame(type="chat.completion.cancel", id="r", pad="x" * (LIMIT - len(base)))
    assert len(text.encode()) == LIMIT
    assert parse_client_frame(text, max_bytes=LIMIT) == CancelFrame("r")


# --- client frames that do not --------------------------------------------------------------------------

# (frame text, expected id in the error frame, expected code, expected param)
BAD_FRAMES: list[tuple[str, str | None, str, str | None]] = [
    ("not json", None, "invalid_json", None),
    ('{"type": "chat.completion.cancel", "id": "a"', None, "invalid_json", None),
    ('{"type": "chat.completion.cancel", "id": NaN}', None, "invalid_json", None),
    ("", None, "invalid_json", None),
    ("[1, 2]", None, "invalid_frame", None),
    ('"chat.completion.cancel"', None, "invalid_frame", None),
    ("null", None, "invalid_frame", None),
    ('{"id": "a"}', "a", "missing_field", "type"),
    ('{"type": "response.create", "id": "a"}', "a", "unknown_frame_type", "type"),
    ('{"type": 5, "id": "a"}', "a", "unknown_frame_type", "type"),
    ('{"type": ["chat.completion.cancel"], "id": "a"}', "a", "unknown_frame_type", "type"),
    ('{"type": "response.create"}', None, "unknown_frame_type", "type"),
    ('{"type": "chat.completion.cancel"}', None, "missing_field", "id"),
    ('{"type": "chat.completion.create", "request": {}}', None, "missing_field", "id"),
    ('{"type": "chat.completion.cancel", "id": ""}', None, "invalid_value", "id"),
    ('{"type": "chat.completion.cancel", "id": 7}', None, "invalid_value", "id"),
    ('{"type": "chat.completion.cancel", "id": null}', None, "invalid_value", "id"),
    ('{"type": "chat.completion.create", "id": "a"}', "a", "missing_field", "request"),
]


@pytest.mark.parametrize(("text", "frame_id", "code", "param"), BAD_FRAMES)
def test_bad_frames_raise_a_frame_error_naming_the_problem(
    text: str, frame_id: str | None, code: str, param: str | None
) -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text, max_bytes=LIMIT)
    err = caught.value
    assert err.frame_id == frame_id
    assert isinstance(err.error, RequestValidationError)
    assert (err.error.code, err.error.param) == (code, param)
    assert str(err) == err.error.message
    assert err.error.message


def test_unknown_type_message_names_the_type_and_the_expected_ones() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame('{"type": "response.create", "id": "a"}', max_bytes=LIMIT)
    message = caught.value.error.message
    assert "'response.create'" in message
    assert "chat.completion.create" in message
    assert "chat.completion.cancel" in message


def test_an_invalid_chat_body_is_reported_as_http_reports_it_with_the_frame_id() -> None:
    bad_body = {"model": "mock-echo", "messages": "hello"}
    with pytest.raises(RequestValidationError) as http_caught:
        parse_chat_request(bad_body)
    with pytest.raises(FrameError) as caught:
        parse_client_frame(_create("r2", request=bad_body), max_bytes=LIMIT)
    assert caught.value.frame_id == "r2"
    assert error_object(caught.value.error) == error_object(http_caught.value)


def test_a_chat_body_that_is_not_an_object_is_reported_with_the_frame_id() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(_create("r3", request=[1]), max_bytes=LIMIT)
    assert caught.value.frame_id == "r3"
    assert isinstance(caught.value.error, RequestValidationError)


def test_unsupported_parameters_keep_their_code() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame(_create("r4", request={**BODY, "audio": {"voice": "alloy"}}), max_bytes=LIMIT)
    assert caught.value.frame_id == "r4"
    assert caught.value.error.code == "unsupported_parameter"


def test_an_oversized_frame_is_refused_unparsed_as_request_too_large() -> None:
    text = _create("big", request={**BODY, "messages": [{"role": "user", "content": "x" * LIMIT}]})
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text, max_bytes=LIMIT)
    assert caught.value.frame_id is None  # the frame is not parsed, so its id is not read
    assert isinstance(caught.value.error, RequestTooLarge)
    assert caught.value.error.code == "request_too_large"
    assert str(LIMIT) in caught.value.error.message


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    base = _frame(type="chat.completion.cancel", id="r", pad="")
    text = _frame(type="chat.completion.cancel", id="r", pad="é" * ((LIMIT - len(base)) // 2 + 1))
    assert len(text) < LIMIT < len(text.encode())
    with pytest.raises(FrameError) as caught:
        parse_client_frame(text, max_bytes=LIMIT)
    assert caught.value.error.code == "request_too_large"


def test_a_lone_surrogate_is_invalid_json_not_a_crash() -> None:
    with pytest.raises(FrameError) as caught:
        parse_client_frame('{"type": "chat.completion.cancel", "id": "\ud800"}', max_bytes=LIMIT)
    assert caught.value.error.code == "invalid_json"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(st.text())
def test_any_text_parses_or_raises_a_frame_error(text: str) -> None:
    try:
        frame = parse_client_frame(text, max_bytes=LIMIT)
    except FrameError as exc:
        assert isinstance(exc.error, RequestValidationError | RequestTooLarge)
    else:
        assert isinstance(frame, CreateFrame | CancelFrame)


@given(st.sampled_from(["chat.completion.create", "chat.completion.cancel"]), _json, _json)
def test_any_frame_shape_parses_or_raises_a_frame_error(kind: str, frame_id: Any, request: Any) -> None:
    try:
        frame = parse_client_frame(_frame(type=kind, id=frame_id, request=request), max_bytes=LIMIT)
    except FrameError as exc:
        assert isinstance(exc.error, RequestValidationError | RequestTooLarge)
        assert exc.frame_id in (None, frame_id)
    else:
        assert frame.id == frame_id


# --- server frames ----------------------------------------------------------------------------------------


def _events_v1() -> list[Any]:
    return [Token("hello "), Token("there"), Done(StopReason.END, Usage(prompt_tokens=2, completion_tokens=2))]


def _events_v2() -> list[Any]:
    return [
        Thinking("hmm"),
        Text("ok"),
        ToolUse(id="call_1", name="lookup", arguments='{"q": 1}'),
        Done(StopReason.TOOL_USE, Usage(prompt_tokens=5, completion_tokens=3)),
    ]


def _sse_chunks(events: list[Any], include_usage: bool) -> list[dict[str, Any]]:
    """What the SSE route would put on the wire for these events, decoded."""
    encoder = ChunkEncoder("mock-echo", "chatcmpl-abc", 1700000000, include_usage)
    wire = [sse_event(chunk) for event in events for chunk in encoder.encode(event)]
    return [json.loads(line.removeprefix(b"data: ")) for line in wire]


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize(
    ("events", "finish"), [(_events_v1(), "stop"), (_events_v2(), "tool_calls")], ids=["v1", "v2"]
)
def test_frames_carry_exactly_the_sse_chunks_then_done(
    events: list[Any], finish: str, include_usage: bool
) -> None:
    encoder = FrameEncoder("r1", ChunkEncoder("mock-echo", "chatcmpl-abc", 1700000000, include_usage))
    frames = [json.loads(text) for event in events for text in encoder.encode(event)]
    chunks, done = frames[:-1], frames[-1]
    assert all(f["type"] == "chat.completion.chunk" and f["id"] == "r1" for f in chunks)
    assert [f["chunk"] for f in chunks] == _sse_chunks(events, include_usage)
    assert all(set(f) == {"type", "id", "chunk"} for f in chunks)
    usage = events[-1].usage
    assert done == {
        "type": "chat.completion.done",
        "id": "r1",
        "finish_reason": finish,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    assert (chunks[-1]["chunk"]["choices"] == []) is include_usage


def test_only_done_produces_the_done_frame() -> None:
    encoder = FrameEncoder("r1", ChunkEncoder("m", "chatcmpl-1", 1, False))
    first = [json.loads(t) for t in encoder.encode(Token("a"))]
    assert [f["type"] for f in first] == ["chat.completion.chunk", "chat.completion.chunk"]  # role, content
    last = [json.loads(t) for t in encoder.encode(Done(StopReason.MAX_TOKENS, Usage(1, 1)))]
    assert [f["type"] for f in last] == ["chat.completion.chunk", "chat.completion.done"]
    assert last[-1]["finish_reason"] == "length"


def test_chunk_and_done_frames_are_compact_json_text() -> None:
    text = chunk_frame("r1", {"a": "é"})
    assert text == '{"type":"chat.completion.chunk","id":"r1","chunk":{"a":"é"}}'
    assert json.loads(done_frame("r1", "stop", {"total_tokens": 0})) == {
        "type": "chat.completion.done",
        "id": "r1",
        "usage": {"total_tokens": 0},
        "finish_reason": "stop",
    }


@pytest.mark.parametrize(
    ("exc", "frame_id"),
    [
        (Unavailable("backend down"), "r1"),
        (RequestValidationError("bad", param="messages", code="missing_field"), None),
        (TooManyRequests("socket already runs 8 requests"), "r2"),
        (RequestCancelled("cancelled by the client"), "r3"),
    ],
)
def test_error_frames_carry_the_openai_error_object(exc: Exception, frame_id: str | None) -> None:
    assert json.loads(error_frame(frame_id, exc, "req-1")) == {
        "type": "error",
        "id": frame_id,
        "error": error_object(exc, "req-1"),
    }


def test_socket_limit_and_cancel_errors_have_their_own_codes() -> None:
    assert error_object(TooManyRequests("x")) == {
        "message": "x",
        "type": "rate_limit_error",
        "param": None,
        "code": "too_many_requests",
    }
    assert error_object(RequestCancelled("y"))["code"] == "request_cancelled"
    assert error_object(RequestCancelled("y"))["type"] == "invalid_request_error"


def test_a_bug_reveals_only_the_request_id() -> None:
    frame = json.loads(error_frame("r1", KeyError("secret detail"), "req-42"))
    assert frame["error"]["code"] == "internal_error"
    assert "secret" not in frame["error"]["message"]
    assert "req-42" in frame["error"]["message"]
