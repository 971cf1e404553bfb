"""Engine events -> Responses stream events and the final ``response`` object, judged by the openai SDK.

Each case's events go through `ResponseEncoder`; the result must be (1) the exact event sequence listed,
(2) valid for the SDK's strict ``ResponseStreamEvent`` models, (3) readable by the SDK's own `Stream` from the
SSE bytes, fed whole and byte by byte, and (4) accepted by the SDK's ``responses.stream()`` state machine, whose
final response has the same output text, calls and usage as the encoder's own ``response()`` object (which
the SDK's strict ``Response`` model also accepts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from openai import NOT_GIVEN, OpenAI, Stream
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from adapters.errors import Unavailable, UpstreamRateLimited
from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage
from compat.openai.responses_request import parse_responses_request
from compat.openai.responses_stream import ResponseEncoder, ResponseSSE, new_response_id, responses_usage
from compat.openai.sse import sse_typed_event

EVENT = TypeAdapter(ResponseStreamEvent)
CREATED = 1_700_000_000
USAGE = Usage(prompt_tokens=3, completion_tokens=2)
CALL = ToolUse(id="call_1", name="get_weather", arguments='{"city":"Oslo"}')


def settings() -> dict[str, Any]:
    return dict(parse_responses_request({"model": "m", "input": "hi"}).settings)


def encoder() -> ResponseEncoder:
    return ResponseEncoder("resp_test", CREATED, "m", settings())


@dataclass(frozen=True)
class Case:
    id: str
    events: list[Event]
    types: list[str]  # after response.created and response.in_progress
    output_text: str
    status: str = "completed"
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    item_types: list[str] = field(default_factory=lambda: ["message"])


MESSAGE_OPEN = ["response.output_item.added", "response.content_part.added"]
MESSAGE_CLOSE = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
CALL_EVENTS = [
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
]

CASES = [
    Case(
        "text",
        [Text("Hel"), Token("lo"), Done(StopReason.END, USAGE)],
        [
            *MESSAGE_OPEN,
            "response.output_text.delta",
            "response.output_text.delta",
            *MESSAGE_CLOSE,
            "response.completed",
        ],
        "Hello",
    ),
    Case("nothing", [Done(StopReason.END, USAGE)], [*MESSAGE_OPEN, *MESSAGE_CLOSE, "response.completed"], ""),
    Case(
        "max tokens",
        [Text("Hel"), Done(StopReason.MAX_TOKENS, USAGE)],
        [*MESSAGE_OPEN, "response.output_text.delta", *MESSAGE_CLOSE, "response.incomplete"],
        "Hel",
        status="incomplete",
    ),
    Case(
        "tool call only",
        [CALL, Done(StopReason.TOOL_USE, USAGE)],
        [*CALL_EVENTS, "response.completed"],
        "",
        calls=[("call_1", "get_weather", '{"city":"Oslo"}')],
        item_types=["function_call"],
    ),
    Case(
        "reasoning, text, call, text (a reasoning signature has no place here: skipped)",
        [
            Thinking("hm"),
            Thinking("m"),
            Thinking("", signature="c2ln"),
            Text("ok"),
            CALL,
            Text("done"),
            Done(StopReason.TOOL_USE, USAGE),
        ],
        [
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.output_item.done",
            *MESSAGE_OPEN,
            "response.output_text.delta",
            *MESSAGE_CLOSE,
            *CALL_EVENTS,
            *MESSAGE_OPEN,
            "response.output_text.delta",
            *MESSAGE_CLOSE,
            "response.completed",
        ],
        "okdone",
        calls=[("call_1", "get_weather", '{"city":"Oslo"}')],
        item_types=["reasoning", "message", "function_call", "message"],
    ),
    Case(
        "text then reasoning",
        [Text("a"), Thinking("b"), Done(StopReason.END, USAGE)],
        [
            *MESSAGE_OPEN,
            "response.output_text.delta",
            *MESSAGE_CLOSE,
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.output_item.done",
            "response.completed",
        ],
        "a",
        item_types=["message", "reasoning"],
    ),
]


def run(case: Case) -> tuple[ResponseEncoder, list[dict[str, Any]]]:
    enc = encoder()
    out = enc.start()
    for event in case.events:
        out.extend(enc.encode(event))
    return enc, out


@pytest.fixture
def client() -> Iterator[OpenAI]:
    # Never used to send anything: the SDK's Stream needs a client for its decoder and strict validation.
    with OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1", _strict_response_validation=True) as sdk:
        yield sdk


def sdk_read(client: OpenAI, wire: bytes, *, byte_by_byte: bool) -> list[ResponseStreamEvent]:
    content = (wire[i : i + 1] for i in range(len(wire))) if byte_by_byte else wire
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/responses")
    response = httpx2.Response(200, content=content, request=request)
    return list(Stream(cast_to=ResponseStreamEvent, response=response, client=client))  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_event_sequence_indices_and_ids(case: Case) -> None:
    enc, events = run(case)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", *case.types]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert {e["response"]["id"] for e in events if "response" in e} == {"resp_test"}
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == list(range(len(case.item_types)))
    assert [e["item"]["type"] for e in added] == case.item_types
    for event in events:
        if "item_id" in event:  # every item event names the item last added, at its index
            opened = [e for e in added if e["sequence_number"] < event["sequence_number"]][-1]
            assert (event["item_id"], event["output_index"]) == (opened["item"]["id"], opened["output_index"])
        EVENT.validate_python(event, strict=False)
    assert enc.finished
    final = events[-1]["response"]
    assert final == enc.response()
    assert final["status"] == case.status
    assert final["usage"] == responses_usage(USAGE)
    assert final["incomplete_details"] == (
        {"reason": "max_output_tokens"} if case.status == "incomplete" else None
    )


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "byte by byte"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sdk_stream_helper_assembles_the_same_response(client: OpenAI, case: Case, byte_by_byte: bool) -> None:
    _, events = run(case)
    wire = b"".join(sse_typed_event(e) for e in events)
    read = sdk_read(client, wire, byte_by_byte=byte_by_byte)
    assert [e.type for e in read] == [e["type"] for e in events]
    state: ResponseStreamState[object] = ResponseStreamState(input_tools=[], text_format=NOT_GIVEN)
    for event in read:
        state.handle_event(event)  # raises on any event out of the helper's order
    if case.status == "completed":
        final = state._completed_response
        assert final is not None
    else:
        final = Response.model_validate(events[-1]["response"])
    assert final.id == "resp_test"
    assert final.output_text == case.output_text
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == case.calls
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (3, 2)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_final_response_is_a_valid_sdk_response(case: Case) -> None:
    enc, _ = run(case)
    response = Response.model_validate(enc.response(), strict=False)
    assert response.output_text == case.output_text
    assert [item.type for item in response.output] == case.item_types
    assert response.status == case.status
    assert response.tool_choice == "auto" and response.tools == [] and response.parallel_tool_calls is True


def test_typed_sse_framing() -> None:
    assert sse_typed_event({"type": "response.created", "sequence_number": 0}) == (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'
    )


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (Unavailable("upstream broke"), "server_error", "upstream broke"),
        (UpstreamRateLimited("slow down"), "rate_limit_exceeded", "slow down"),
        (ValueError("secret detail"), "server_error", None),
    ],
)
def test_failure_after_start_is_response_failed(exc: BaseException, code: str, message: str | None) -> None:
    enc = encoder()
    enc.start()
    enc.encode(Text("par"))
    [failed] = enc.fail(exc, "req_1")
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 5
    response = failed["response"]
    assert response["status"] == "failed" and response["usage"] is None
    [partial] = response["output"]  # what was sent stays sent
    assert (partial["status"], partial["content"][0]["text"]) == ("incomplete", "par")
    assert response["error"]["code"] == code
    if message is None:
        assert "secret" not in response["error"]["message"] and "req_1" in response["error"]["message"]
    else:
        assert response["error"]["message"] == message
    EVENT.validate_python(failed)
    assert enc.finished


def test_failure_with_no_item_open_keeps_the_finished_ones() -> None:
    enc = encoder()
    enc.start()
    enc.encode(CALL)
    [failed] = enc.fail(Unavailable("x"))
    assert [item["type"] for item in failed["response"]["output"]] == ["function_call"]


def test_misuse_raises() -> None:
    enc = encoder()
    with pytest.raises(RuntimeError):
        enc.encode(Text("x"))  # before start()
    enc.start()
    with pytest.raises(RuntimeError):
        enc.start()
    enc.encode(Done(StopReason.END, USAGE))
    with pytest.raises(RuntimeError):
        enc.encode(Text("x"))
    with pytest.raises(RuntimeError):
        enc.fail(ValueError())


def test_response_ids_are_fresh() -> None:
    first, second = new_response_id(), new_response_id()
    assert first != second and first.startswith("resp_") and len(first) == 37


def test_sse_framing_starts_the_response_once_and_fails_in_band() -> None:
    sse = ResponseSSE(encoder())
    first = sse.encode(Text("a"))
    assert first.startswith(b"event: response.created\n") and first.count(b"event: response.created") == 1
    assert b"event: response.created" not in sse.encode(Text("b"))
    assert sse.end() == b""
    assert sse.error(Unavailable("x"), "req_1").startswith(b"event: response.failed\n")


def test_sse_error_before_any_event_still_starts_the_response() -> None:
    wire = ResponseSSE(encoder()).error(Unavailable("x"), None)
    assert [line for line in wire.split(b"\n") if line.startswith(b"event:")] == [
        b"event: response.created",
        b"event: response.in_progress",
        b"event: response.failed",
    ]


def test_echoed_settings_with_tools_and_a_schema_are_valid_for_the_sdk() -> None:
    parsed = parse_responses_request(
        {
            "model": "m",
            "input": "hi",
            "instructions": "be brief",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
            "metadata": {"k": "v"},
            "max_output_tokens": 20,
            "user": "u",
        }
    )
    enc = ResponseEncoder("resp_x", CREATED, "m", parsed.settings)
    enc.start()
    enc.encode(Done(StopReason.END, USAGE))
    response = Response.model_validate(enc.response())
    assert response.tools[0].type == "function" and response.tools[0].name == "f"
    assert response.tool_choice.type == "function"  # type: ignore[union-attr]
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert (response.instructions, response.max_output_tokens, response.metadata) == ("be brief", 20, {"k": "v"})
