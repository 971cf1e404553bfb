"""Engine events -> Anthropic's message object and stream events, judged by the anthropic SDK's own parsers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.errors import Unavailable
from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage
from compat.anthropic.response import MessageAccumulator, count_tokens_answer, new_message_id, stop_sequence
from compat.anthropic.stream import EventEncoder, MessagesSSEEncoder, sse_error, sse_event

from .anthropic_shapes import sdk_error, sdk_final_message, sdk_message

CALL = ToolUse("toolu_1", "get_weather", '{"city": "Paris"}')


def answer(events: list[Event], stops: tuple[str, ...] = ()) -> dict[str, Any]:
    accumulator = MessageAccumulator("m", "msg_1", stops)
    for event in events:
        accumulator.add(event)
    return accumulator.result()


def streamed(events: list[Event], stops: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    encoder = EventEncoder("m", "msg_1", stops)
    return [pair for event in events for pair in encoder.encode(event)]


# (id, events, stops, expected content, stop_reason, stop_sequence)
CASES: list[tuple[str, list[Event], tuple[str, ...], list[dict[str, Any]], str, str | None]] = [
    (
        "text pieces make one block",
        [Text("Hel"), Text(""), Text("lo"), Done(StopReason.END, Usage(3, 2))],
        (),
        [{"type": "text", "text": "Hello"}],
        "end_turn",
        None,
    ),
    (
        "v1 tokens are text",
        [Token("a "), Token("b"), Done(StopReason.MAX_TOKENS, Usage(3, 2))],
        (),
        [{"type": "text", "text": "a b"}],
        "max_tokens",
        None,
    ),
    (
        "thinking, then text, then a call",
        [Thinking("hmm"), Thinking(" ok"), Text("Checking."), CALL, Done(StopReason.TOOL_USE, Usage(5, 4))],
        (),
        [
            {"type": "thinking", "thinking": "hmm ok", "signature": ""},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
        "tool_use",
        None,
    ),
    (
        "two calls, then text",
        [CALL, ToolUse("toolu_2", "f", "{}"), Text("x"), Done(StopReason.TOOL_USE, Usage(1, 3))],
        (),
        [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
            {"type": "text", "text": "x"},
        ],
        "tool_use",
        None,
    ),
    (
        "stop sequence named by the backend",
        [Text("a"), Done(StopReason.STOP_SEQUENCE, Usage(1, 1), "END")],
        ("STOP", "END"),
        [{"type": "text", "text": "a"}],
        "stop_sequence",
        "END",
    ),
    (
        "stop sequence: the only one given",
        [Text("a"), Done(StopReason.STOP_SEQUENCE, Usage(1, 1))],
        ("END",),
        [{"type": "text", "text": "a"}],
        "stop_sequence",
        "END",
    ),
    (
        "stop sequence unknown among several",
        [Text("a"), Done(StopReason.STOP_SEQUENCE, Usage(1, 1))],
        ("A", "B"),
        [{"type": "text", "text": "a"}],
        "stop_sequence",
        None,
    ),
    ("empty answer", [Done(StopReason.END, Usage(2, 0))], (), [], "end_turn", None),
    (
        "signed thinking: each signature ends its block",
        [
            Thinking("a"),
            Thinking("b"),
            Thinking("", signature="c2lnMQ=="),
            Thinking("c"),
            Thinking("", signature="c2lnMg=="),
            Text("x"),
            Done(StopReason.END, Usage(2, 5)),
        ],
        (),
        [
            {"type": "thinking", "thinking": "ab", "signature": "c2lnMQ=="},
            {"type": "thinking", "thinking": "c", "signature": "c2lnMg=="},
            {"type": "text", "text": "x"},
        ],
        "end_turn",
        None,
    ),
    (
        "a bare signature, redacted reasoning, reasoning around a call",
        [
            Thinking("", signature="c2ln"),
            Thinking("", redacted="b3BhcXVl"),
            Thinking(""),
            Thinking("t"),
            CALL,
            Thinking("u"),
            Done(StopReason.TOOL_USE, Usage(2, 5)),
        ],
        (),
        [
            {"type": "thinking", "thinking": "", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "b3BhcXVl"},
            {"type": "thinking", "thinking": "t", "signature": ""},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "thinking", "thinking": "u", "signature": ""},
        ],
        "tool_use",
        None,
    ),
]


@pytest.mark.parametrize(
    ("events", "stops", "content", "reason", "sequence"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_answer_and_stream_agree(
    events: list[Event], stops: tuple[str, ...], content: list[dict[str, Any]], reason: str, sequence: str | None
) -> None:
    done = events[-1]
    assert isinstance(done, Done)
    usage = {"input_tokens": done.usage.prompt_tokens, "output_tokens": done.usage.completion_tokens}
    expected = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage,
    }
    whole = answer(events, stops)
    assert whole == expected
    assert sdk_message(whole).model_dump(exclude_none=True) == sdk_message(expected).model_dump(exclude_none=True)
    final = sdk_final_message(streamed(events, stops))
    assert final.model_dump(exclude_none=True) == sdk_message(expected).model_dump(exclude_none=True)


def test_stream_event_order() -> None:
    names = [
        name
        for name, _ in streamed([Text("a"), Thinking("t"), CALL, Text("b"), Done(StopReason.END, Usage(1, 4))])
    ]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    indexes = [
        data["index"] for name, data in streamed([Text("a"), Thinking("t"), CALL, Text("b")]) if "index" in data
    ]
    assert indexes == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3]


def test_signature_and_redacted_blocks_on_the_wire() -> None:
    """A signature is the last delta of its thinking block, which closes at once; a redacted block comes whole
    in its start event; indexes count up without gaps."""
    events = streamed(
        [
            Thinking("a"),
            Thinking("", signature="c2ln"),
            Thinking("b"),
            Thinking("", redacted="b3BhcXVl"),
            Text("x"),
        ]
    )
    assert [
        (name, data.get("index"), data.get("delta") or data.get("content_block")) for name, data in events[2:]
    ] == [
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", 0, {"type": "thinking_delta", "thinking": "a"}),
        ("content_block_delta", 0, {"type": "signature_delta", "signature": "c2ln"}),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, {"type": "thinking", "thinking": "", "signature": ""}),
        ("content_block_delta", 1, {"type": "thinking_delta", "thinking": "b"}),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, {"type": "redacted_thinking", "data": "b3BhcXVl"}),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, {"type": "text", "text": ""}),
        ("content_block_delta", 3, {"type": "text_delta", "text": "x"}),
    ]


def test_message_start_and_delta_usage() -> None:
    events = streamed([Text("a"), Done(StopReason.END, Usage(7, 1))])
    start = events[0][1]["message"]
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert start["content"] == [] and start["stop_reason"] is None
    assert events[-2][1]["usage"] == {"input_tokens": 7, "output_tokens": 1}


def test_tool_input_arrives_as_one_json_delta() -> None:
    events = streamed([CALL])
    start, delta = events[2][1], events[3][1]
    assert start["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    assert delta["delta"] == {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}


def test_events_after_done_are_a_bug() -> None:
    encoder = EventEncoder("m", "msg_1")
    encoder.encode(Done(StopReason.END, Usage()))
    with pytest.raises(RuntimeError):
        encoder.encode(Text("late"))
    accumulator = MessageAccumulator("m", "msg_1")
    with pytest.raises(RuntimeError):
        accumulator.result()
    accumulator.add(Done(StopReason.END, Usage()))
    with pytest.raises(RuntimeError):
        accumulator.add(Text("late"))


def test_sse_framing() -> None:
    frame = sse_event("content_block_delta", {"type": "content_block_delta", "text": "é\nx"})
    assert frame == 'event: content_block_delta\ndata: {"type":"content_block_delta","text":"é\\nx"}\n\n'.encode()


def test_sse_error_event() -> None:
    frame = sse_error(Unavailable("upstream went away"), "req_1")
    head, data = frame.decode().rstrip("\n").split("\n")
    assert head == "event: error"
    body = json.loads(data.removeprefix("data: "))
    assert body == {"type": "error", "error": {"type": "api_error", "message": "upstream went away"}}
    assert sdk_error(body).error.type == "api_error"
    bug = json.loads(sse_error(KeyError("secret"), "req_9").decode().split("data: ")[1])
    assert "secret" not in json.dumps(bug) and "req_9" in bug["error"]["message"]


def test_small_pieces() -> None:
    assert new_message_id().startswith("msg_") and new_message_id() != new_message_id()
    assert count_tokens_answer(12) == {"input_tokens": 12}
    assert stop_sequence(Done(StopReason.END, Usage()), ("x",)) is None


def test_sse_encoder_frames_every_event() -> None:
    encoder = MessagesSSEEncoder(EventEncoder("m", "msg_1"))
    raw = encoder.encode(Text("hi")) + encoder.encode(Done(StopReason.END, Usage(1, 1))) + encoder.end()
    frames = raw.decode().split("\n\n")
    assert frames[-1] == ""
    names = [frame.split("\n")[0].removeprefix("event: ") for frame in frames[:-1]]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert encoder.error(Unavailable("x"), "req_1").startswith(b"event: error\n")
