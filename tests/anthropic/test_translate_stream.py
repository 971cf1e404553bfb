"""Upstream SSE event streams (written by the fake on the wire, parsed by the real SDK) -> engine events."""

from __future__ import annotations

import pytest

from adapters.anthropic_backend import AnthropicBackend
from adapters.errors import Unavailable
from adapters.types import (
    Done,
    Message,
    MessageV2,
    Resolved,
    ResolvedV2,
    Role,
    StopReason,
    Text,
    TextBlock,
    Thinking,
    Token,
    ToolSpec,
    ToolUse,
    Usage,
)

from .conftest import collect, collect_failure
from .fake_upstream import (
    Drop,
    FakeMessagesAPI,
    Sse,
    message_end,
    message_start,
    redacted_thinking_block,
    stream_reply,
    text_block,
    text_reply,
    thinking_block,
    tool_block,
)

REQ = ResolvedV2(model="claude", messages=(MessageV2(Role.USER, (TextBlock("hi"),)),))
TOOL_REQ = ResolvedV2(
    model="claude",
    messages=(MessageV2(Role.USER, (TextBlock("weather?"),)),),
    tools=(
        ToolSpec(name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}}),
    ),
)


async def test_text_deltas_stream_in_order_then_done_with_usage(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(text_reply(["Hel", "lo", ", world"], input_tokens=21, output_tokens=4))
    events = await collect(backend, REQ)
    assert events == [Text("Hel"), Text("lo"), Text(", world"), Done(StopReason.END, Usage(21, 4))]


async def test_v1_generate_sends_tokens_and_leaves_out_reasoning(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(
        stream_reply(
            message_start(input_tokens=3), thinking_block(0, ["hmm"]), text_block(1, ["Hi", "!"]), message_end()
        )
    )
    events = await collect(backend, Resolved(model="claude", messages=(Message(Role.USER, "hi"),)))
    assert events == [Token("Hi"), Token("!"), Done(StopReason.END, Usage(3, 5))]


async def test_thinking_deltas_become_thinking_events(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    """Reasoning text as it comes, then the block's signature as its own piece (it ends the block)."""
    fake.reply(
        stream_reply(
            message_start(),
            thinking_block(0, ["Let me ", "think."], signature="RXVzaWduZWQ="),
            text_block(1, ["42"]),
            message_end(),
        )
    )
    events = await collect(backend, REQ)
    assert events[:4] == [
        Thinking("Let me "),
        Thinking("think."),
        Thinking("", signature="RXVzaWduZWQ="),
        Text("42"),
    ]
    assert isinstance(events[-1], Done)
    assert len(events) == 5


async def test_redacted_thinking_is_one_piece_with_its_data(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(
        stream_reply(message_start(), redacted_thinking_block(0, "b3BhcXVl"), text_block(1, ["ok"]), message_end())
    )
    events = await collect(backend, REQ)
    assert events == [Thinking("", redacted="b3BhcXVl"), Text("ok"), Done(StopReason.END, Usage(11, 5))]


async def test_tool_input_deltas_are_assembled_into_one_complete_call(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(
        stream_reply(
            message_start(),
            text_block(0, ["Let me check."]),
            tool_block(1, "toolu_01", "get_weather", ['{"ci', 'ty": "Pa', 'ris"}']),
            tool_block(2, "toolu_02", "get_weather", ["", '{"city": "Oslo"}']),
            message_end("tool_use", output_tokens=40),
        )
    )
    events = await collect(backend, TOOL_REQ)
    assert events == [
        Text("Let me check."),
        ToolUse("toolu_01", "get_weather", '{"city": "Paris"}'),
        ToolUse("toolu_02", "get_weather", '{"city": "Oslo"}'),
        Done(StopReason.TOOL_USE, Usage(11, 40)),
    ]


async def test_tool_call_without_input_deltas_has_empty_object_arguments(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(stream_reply(message_start(), tool_block(0, "toolu_9", "now", []), message_end("tool_use")))
    events = await collect(backend, TOOL_REQ)
    assert events[0] == ToolUse("toolu_9", "now", "{}")


async def test_tool_input_that_is_not_a_json_object_fails_the_stream(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(
        stream_reply(message_start(), tool_block(0, "toolu_1", "get_weather", ['{"city": ']), message_end())
    )
    events, error = await collect_failure(backend, TOOL_REQ)
    assert events == []
    assert isinstance(error, Unavailable)
    assert error.http_status == 502


@pytest.mark.parametrize(
    ("upstream", "engine"),
    [
        ("end_turn", StopReason.END),
        ("max_tokens", StopReason.MAX_TOKENS),
        ("tool_use", StopReason.TOOL_USE),
        ("stop_sequence", StopReason.STOP_SEQUENCE),
        ("pause_turn", StopReason.END),
        ("refusal", StopReason.END),
        ("model_context_window_exceeded", StopReason.MAX_TOKENS),
    ],
)
async def test_stop_reason_mapping(
    backend: AnthropicBackend, fake: FakeMessagesAPI, upstream: str, engine: StopReason
) -> None:
    stop_sequence = "END" if upstream == "stop_sequence" else None
    fake.reply(text_reply(["x"], stop_reason=upstream, stop_sequence=stop_sequence))
    events = await collect(backend, REQ)
    assert events[-1] == Done(engine, Usage(11, 5), stop_sequence)  # the matched sequence is passed on


async def test_prompt_usage_counts_cache_reads_and_writes(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    start = message_start(input_tokens=5, cache_read_input_tokens=100, cache_creation_input_tokens=20)
    fake.reply(stream_reply(start, text_block(0, ["x"]), message_end(output_tokens=9)))
    events = await collect(backend, REQ)
    assert events[-1] == Done(StopReason.END, Usage(125, 9))


async def test_unknown_events_and_blocks_are_skipped(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    fake.reply(
        stream_reply(
            message_start(),
            Sse("future_event", {"type": "future_event", "payload": 1}),
            Sse("future_event", '"JSON that is not an object"'),
            Sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {},
                    },
                },
            ),
            Sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            text_block(1, ["visible"]),
            message_end(),
        )
    )
    events = await collect(backend, REQ)
    assert events == [Text("visible"), Done(StopReason.END, Usage(11, 5))]


async def test_a_body_that_ends_before_message_stop_is_a_failure(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["partial"])))
    events, error = await collect_failure(backend, REQ)
    assert events == [Text("partial")]
    assert isinstance(error, Unavailable)
    assert error.http_status == 502


@pytest.mark.parametrize(
    "bad",
    [
        Sse("message_delta", "{not json"),
        Sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),  # no usage
    ],
)
async def test_malformed_events_are_an_upstream_failure(
    backend: AnthropicBackend, fake: FakeMessagesAPI, bad: Sse
) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["ok"]), bad, message_end()))
    events, error = await collect_failure(backend, REQ)
    assert events == [Text("ok")]
    assert isinstance(error, Unavailable)
    assert error.http_status == 502


async def test_text_carried_by_block_starts_is_not_lost(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    def started(index: int, block: dict[str, object]) -> Sse:
        return Sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})

    fake.reply(
        stream_reply(
            message_start(),
            started(0, {"type": "thinking", "thinking": "Pondering", "signature": ""}),
            Sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            started(1, {"type": "text", "text": "Hello"}),
            text_block(1, [" there"])[1:],
            message_end(),
        )
    )
    events = await collect(backend, REQ)
    assert events[:3] == [Thinking("Pondering"), Text("Hello"), Text(" there")]


async def test_usage_updates_in_message_delta_are_taken(backend: AnthropicBackend, fake: FakeMessagesAPI) -> None:
    """Newer APIs repeat cumulative input counts in message_delta, and may send more than one delta."""
    first_delta = Sse(
        "message_delta", {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 2}}
    )
    final_delta = Sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 6, "input_tokens": 40, "cache_read_input_tokens": 2},
        },
    )
    fake.reply(
        stream_reply(
            message_start(input_tokens=38),
            text_block(0, ["x"]),
            first_delta,
            final_delta,
            Sse("message_stop", {"type": "message_stop"}),
        )
    )
    events = await collect(backend, REQ)
    assert events[-1] == Done(StopReason.END, Usage(42, 6))


async def test_connection_lost_after_message_stop_does_not_fail_the_finished_answer(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    fake.reply(stream_reply(message_start(), text_block(0, ["complete"]), message_end(), Drop()))
    events = await collect(backend, REQ)
    assert events == [Text("complete"), Done(StopReason.END, Usage(11, 5))]
