"""Engine events <-> OpenAI chat chunks, SSE bytes and completions, as one table used in both directions.

Forward: the events rendered by `ChunkEncoder` + `sse_event` equal the expected wire bytes exactly.
Backward: the expected wire bytes, read by the openai SDK's own `Stream` (strict response validation, fed whole
and byte by byte), give back the case's values: text, reasoning, tool calls, finish reason, usage.
The same events through `CompletionAccumulator` give a ``chat.completion`` with the same values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI, Stream
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from adapters.errors import Unavailable
from adapters.types import Done, Event, StopReason, Text, Thinking, Token, ToolUse, Usage
from compat.openai.chat_response import ChunkEncoder, CompletionAccumulator, finish_reason, new_completion_id
from compat.openai.sse import SSE_DONE, sse_error, sse_event

ID = "chatcmpl-test"
CREATED = 1_700_000_000
HEAD = (
    f'data: {{"id":"{ID}","object":"chat.completion.chunk","created":{CREATED},"model":"m",'
    '"system_fingerprint":null,'
)


def line(delta: str, finish: str = "null") -> str:
    """One expected content/finish event, written out (``delta`` is literal JSON)."""
    return f'{HEAD}"choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}\n\n'


ROLE = line('{"role":"assistant","content":"","refusal":null}')
ROLE_BEFORE_TOOLS = line('{"role":"assistant","content":null,"refusal":null}')
DETAILS = '"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}'


def usage_line(prompt: int, completion: int) -> str:
    total = prompt + completion
    usage = f'{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total},{DETAILS}}}'
    return f'{HEAD}"choices":[],"usage":{usage}}}\n\n'


DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Case:
    id: str
    events: list[Event]
    include_usage: bool
    wire: str  # everything after the events, including [DONE]
    content: str | None
    finish_reason: str
    usage: tuple[int, int]
    reasoning: str = ""
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, arguments)


CASES = [
    Case(
        "v1 tokens",
        [Token("Hel"), Token("lo"), Done(StopReason.END, Usage(3, 2))],
        False,
        ROLE + line('{"content":"Hel"}') + line('{"content":"lo"}') + line("{}", '"stop"') + DONE,
        "Hello",
        "stop",
        (3, 2),
    ),
    Case(
        "usage chunk only when asked",
        [Token("a"), Done(StopReason.MAX_TOKENS, Usage(5, 1))],
        True,
        ROLE + line('{"content":"a"}') + line("{}", '"length"') + usage_line(5, 1) + DONE,
        "a",
        "length",
        (5, 1),
    ),
    Case(
        "empty generation still opens with the role",
        [Done(StopReason.END, Usage(4, 0))],
        True,
        ROLE + line("{}", '"stop"') + usage_line(4, 0) + DONE,
        "",
        "stop",
        (4, 0),
    ),
    Case(
        "stop sequence, unicode and newlines",
        [Text("é😀\n"), Text('"q"'), Done(StopReason.STOP_SEQUENCE, Usage(1, 2))],
        False,
        ROLE + line('{"content":"é😀\\n"}') + line('{"content":"\\"q\\""}') + line("{}", '"stop"') + DONE,
        'é😀\n"q"',
        "stop",
        (1, 2),
    ),
    Case(
        "thinking then text (a signature or redacted reasoning has no place in chat: skipped)",
        [
            Thinking("", redacted="b3BhcXVl"),
            Thinking("let me "),
            Thinking("see"),
            Thinking("", signature="c2ln"),
            Text("42"),
            Done(StopReason.END, Usage(2, 3)),
        ],
        False,
        ROLE
        + line('{"reasoning_content":"let me "}')
        + line('{"reasoning_content":"see"}')
        + line('{"content":"42"}')
        + line("{}", '"stop"')
        + DONE,
        "42",
        "stop",
        (2, 3),
        reasoning="let me see",
    ),
    Case(
        "parallel tool calls only",
        [
            ToolUse("call_a", "get_weather", '{"city":"Oslo"}'),
            ToolUse("call_b", "now", "{}"),
            Done(StopReason.TOOL_USE, Usage(9, 7)),
        ],
        True,
        ROLE_BEFORE_TOOLS
        + line(
            '{"tool_calls":[{"index":0,"id":"call_a","type":"function",'
            '"function":{"name":"get_weather","arguments":"{\\"city\\":\\"Oslo\\"}"}}]}'
        )
        + line(
            '{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"now","arguments":"{}"}}]}'
        )
        + line("{}", '"tool_calls"')
        + usage_line(9, 7)
        + DONE,
        None,
        "tool_calls",
        (9, 7),
        tool_calls=[("call_a", "get_weather", '{"city":"Oslo"}'), ("call_b", "now", "{}")],
    ),
    Case(
        "text then a tool call",
        [Text("Checking."), ToolUse("c1", "f", '{"x":1}'), Done(StopReason.TOOL_USE, Usage(1, 1))],
        False,
        ROLE
        + line('{"content":"Checking."}')
        + line(
            '{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\\"x\\":1}"}}]}'
        )
        + line("{}", '"tool_calls"')
        + DONE,
        "Checking.",
        "tool_calls",
        (1, 1),
        tool_calls=[("c1", "f", '{"x":1}')],
    ),
]


def render(case: Case) -> bytes:
    encoder = ChunkEncoder("m", ID, CREATED, case.include_usage)
    return b"".join(sse_event(chunk) for event in case.events for chunk in encoder.encode(event)) + SSE_DONE


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_events_render_to_the_expected_wire_bytes(case: Case) -> None:
    assert render(case) == case.wire.encode()


@pytest.fixture
def client() -> Iterator[OpenAI]:
    # Never used to send anything: the SDK's Stream needs a client for its decoder and strict validation.
    with OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1", _strict_response_validation=True) as sdk:
        yield sdk


def sdk_read(client: OpenAI, wire: bytes, *, byte_by_byte: bool) -> list[ChatCompletionChunk]:
    """The chunks a real SDK client gets from these response bytes (raises `openai.APIError` on error events)."""
    content = (wire[i : i + 1] for i in range(len(wire))) if byte_by_byte else wire
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(200, content=content, request=request)
    return list(Stream(cast_to=ChatCompletionChunk, response=response, client=client))


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "byte by byte"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sdk_reads_the_expected_wire_bytes_back_to_the_values(
    client: OpenAI, case: Case, byte_by_byte: bool
) -> None:
    chunks = sdk_read(client, case.wire.encode(), byte_by_byte=byte_by_byte)
    assert {(c.id, c.created, c.model, c.object) for c in chunks} == {(ID, CREATED, "m", "chat.completion.chunk")}
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.role for c in content_chunks[1:]] == [None] * (len(content_chunks) - 1)
    deltas = [c.choices[0].delta for c in content_chunks]
    assert "".join(d.content or "" for d in deltas) == (case.content or "")
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == case.reasoning
    calls = [call for d in deltas for call in d.tool_calls or []]
    assert [c.index for c in calls] == list(range(len(case.tool_calls)))
    assert [(c.id, c.function.name, c.function.arguments) for c in calls if c.function] == case.tool_calls
    assert [c.choices[0].finish_reason for c in content_chunks] == [None] * (len(deltas) - 1) + [
        case.finish_reason
    ]
    assert all(c.usage is None for c in content_chunks)
    usage_chunks = [c for c in chunks if not c.choices]
    if case.include_usage:
        [usage_chunk] = usage_chunks
        assert usage_chunk is chunks[-1]
        assert usage_chunk.usage is not None
        assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == case.usage
        assert usage_chunk.usage.total_tokens == sum(case.usage)
    else:
        assert usage_chunks == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sdk_stream_helper_assembles_the_same_completion(client: OpenAI, case: Case) -> None:
    state: ChatCompletionStreamState = ChatCompletionStreamState()
    for chunk in sdk_read(client, case.wire.encode(), byte_by_byte=False):
        state.handle_chunk(chunk)
    # The snapshot, not get_final_completion(): that one raises for finish_reason "length" by design.
    choice = state.current_completion_snapshot.choices[0]
    assert choice.finish_reason == case.finish_reason
    assert (choice.message.content or "") == (case.content or "")
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == case.tool_calls


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_accumulated_completion_has_the_same_values(case: Case) -> None:
    accumulator = CompletionAccumulator("m", ID, CREATED)
    for event in case.events:
        accumulator.add(event)
    result = accumulator.result()
    completion = ChatCompletion.model_validate(result)
    assert (completion.id, completion.created, completion.model) == (ID, CREATED, "m")
    [choice] = completion.choices
    assert choice.message.content == case.content
    assert (choice.message.model_extra or {}).get("reasoning_content", "") == case.reasoning
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == case.tool_calls
    assert ("tool_calls" in result["choices"][0]["message"]) == bool(case.tool_calls)
    assert choice.finish_reason == case.finish_reason
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == case.usage
    assert completion.usage.total_tokens == sum(case.usage)
    assert (accumulator.finish_reason, accumulator.usage_dict["total_tokens"]) == (
        case.finish_reason,
        sum(case.usage),
    )


def test_completion_object_exact_form() -> None:
    accumulator = CompletionAccumulator("m", ID, CREATED)
    for event in [Thinking("hmm"), Text("Hi"), ToolUse("c1", "f", "{}"), Done(StopReason.TOOL_USE, Usage(2, 3))]:
        accumulator.add(event)
    assert accumulator.result() == {
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": "m",
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi",
                    "refusal": None,
                    "reasoning_content": "hmm",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 2,
            "completion_tokens": 3,
            "total_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_encoder_reports_the_outcome_after_done() -> None:
    encoder = ChunkEncoder("m", ID, CREATED, include_usage=False)
    assert not encoder.done
    with pytest.raises(RuntimeError, match="no Done event yet"):
        _ = encoder.finish_reason
    with pytest.raises(RuntimeError, match="no Done event yet"):
        _ = encoder.usage_dict
    encoder.encode(Token("x"))
    encoder.encode(Done(StopReason.MAX_TOKENS, Usage(7, 1, cached_tokens=4, reasoning_tokens=1)))
    assert encoder.done
    assert encoder.finish_reason == "length"
    assert encoder.usage_dict == {
        "prompt_tokens": 7,
        "completion_tokens": 1,
        "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }


@pytest.mark.parametrize("event", [Token("late"), Done(StopReason.END, Usage())], ids=["token", "done"])
def test_events_after_done_are_a_caller_bug(event: Event) -> None:
    encoder = ChunkEncoder("m", ID, CREATED, include_usage=True)
    accumulator = CompletionAccumulator("m", ID, CREATED)
    encoder.encode(Done(StopReason.END, Usage()))
    accumulator.add(Done(StopReason.END, Usage()))
    with pytest.raises(RuntimeError, match="event after Done"):
        encoder.encode(event)
    with pytest.raises(RuntimeError, match="event after Done"):
        accumulator.add(event)


def test_result_before_done_is_a_caller_bug() -> None:
    accumulator = CompletionAccumulator("m", ID, CREATED)
    accumulator.add(Text("partial"))
    with pytest.raises(RuntimeError, match="no Done event yet"):
        accumulator.result()


def test_mid_stream_error_event_makes_the_sdk_raise(client: OpenAI) -> None:
    encoder = ChunkEncoder("m", ID, CREATED, include_usage=True)
    error = Unavailable("upstream went away", code="upstream_error")
    wire = b"".join(sse_event(c) for c in encoder.encode(Token("partial"))) + sse_error(error, "req-9")
    assert wire.endswith(
        b'data: {"error":{"message":"upstream went away","type":"server_error","param":null,'
        b'"code":"upstream_error"}}\n\n'
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in Stream(
            cast_to=ChatCompletionChunk,
            response=httpx2.Response(200, content=wire, request=httpx2.Request("POST", "http://127.0.0.1:9/")),
            client=client,
        ):
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "partial"]  # the role chunk, then the content
    assert info.value.message == "upstream went away"
    assert info.value.body == {
        "message": "upstream went away",
        "type": "server_error",
        "param": None,
        "code": "upstream_error",
    }


def test_bug_error_event_reveals_only_the_request_id() -> None:
    assert sse_error(KeyError("secret detail"), "req-7") == (
        b'data: {"error":{"message":"The server had an error while processing your request. Request id: req-7",'
        b'"type":"server_error","param":null,"code":"internal_error"}}\n\n'
    )


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (StopReason.END, "stop"),
        (StopReason.MAX_TOKENS, "length"),
        (StopReason.STOP_SEQUENCE, "stop"),
        (StopReason.TOOL_USE, "tool_calls"),
    ],
)
def test_finish_reason_table(stop: StopReason, expected: str) -> None:
    assert finish_reason(stop) == expected


def test_completion_ids_look_like_openai_and_differ() -> None:
    ids = {new_completion_id() for _ in range(100)}
    assert len(ids) == 100
    for completion_id in ids:
        prefix, _, digits = completion_id.partition("-")
        assert prefix == "chatcmpl"
        assert len(digits) == 24
        int(digits, 16)


def test_chunk_dicts_validate_as_sdk_chunks() -> None:
    encoder = ChunkEncoder("m", ID, CREATED, include_usage=True)
    events: list[Event] = [
        Thinking("t"),
        Text("a"),
        ToolUse("c", "f", "{}"),
        Done(StopReason.TOOL_USE, Usage(1, 2)),
    ]
    chunks: list[dict[str, Any]] = [chunk for event in events for chunk in encoder.encode(event)]
    assert len(chunks) == 6
    for chunk in chunks:
        assert ChatCompletionChunk.model_validate(chunk).model_dump(exclude_unset=True) == chunk
