"""Several choices (``n > 1``), log probabilities and cached-token usage in chat chunks and completions, read
back by the openai SDK's own types (strict validation) so the shapes are the ones its clients parse."""

from __future__ import annotations

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from adapters.types import (
    ChoiceEnd,
    Done,
    Event,
    StopReason,
    Text,
    TokenLogprob,
    ToolUse,
    TopLogprob,
    Usage,
)
from compat.openai.chat_response import ChunkEncoder, CompletionAccumulator

HELLO = TokenLogprob("Hel", -0.5, (TopLogprob("Hel", -0.5, b"Hel"), TopLogprob("Hi", -1.5, b"Hi")), b"Hel")
LO = TokenLogprob("lo", -0.25, (), b"lo")
EVENTS: list[Event] = [
    Text("Hel", 1, (HELLO,)),
    Text("A", 0, ()),
    Text("lo", 1, (LO,)),
    ToolUse("call_1", "f", "{}", 2),
    Done(
        StopReason.END,
        Usage(10, 7, cached_tokens=4),
        choices=(ChoiceEnd(0, StopReason.END), ChoiceEnd(1, StopReason.MAX_TOKENS),
                 ChoiceEnd(2, StopReason.TOOL_USE), ChoiceEnd(3, StopReason.END)),
    ),
]  # fmt: skip


def test_chunks_carry_each_choice_index_logprobs_and_one_finish_per_choice() -> None:
    encoder = ChunkEncoder("m", "chatcmpl-x", 1, include_usage=True)
    chunks = [chunk for event in EVENTS for chunk in encoder.encode(event)]
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    final = state.current_completion_snapshot
    by_index = {choice.index: choice for choice in final.choices}
    assert by_index[0].message.content == "A"
    assert by_index[1].message.content == "Hello"
    assert by_index[1].finish_reason == "length"
    assert by_index[2].message.tool_calls is not None and by_index[2].message.tool_calls[0].function.name == "f"
    assert by_index[2].finish_reason == "tool_calls"
    assert by_index[3].message.content == "" and by_index[3].finish_reason == "stop"
    logprobs = by_index[1].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [t.token for t in logprobs.content] == ["Hel", "lo"]
    assert [t.token for t in logprobs.content[0].top_logprobs] == ["Hel", "Hi"]
    assert logprobs.content[0].bytes == list(b"Hel")
    assert by_index[0].logprobs is not None and by_index[0].logprobs.content == []
    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 4}
    roles = [c["choices"][0]["index"] for c in chunks if c["choices"] and "role" in c["choices"][0]["delta"]]
    assert sorted(roles) == [0, 1, 2, 3]


def test_a_completion_has_every_choice_in_index_order() -> None:
    accumulator = CompletionAccumulator("m", "chatcmpl-x", 1)
    for event in EVENTS:
        accumulator.add(event)
    completion = ChatCompletion.model_validate(accumulator.result())
    assert [c.index for c in completion.choices] == [0, 1, 2, 3]
    assert [c.finish_reason for c in completion.choices] == ["stop", "length", "tool_calls", "stop"]
    assert completion.choices[1].message.content == "Hello"
    assert completion.choices[2].message.content is None
    first = completion.choices[1].logprobs
    assert first is not None and first.content is not None
    assert "".join(t.token for t in first.content) == "Hello"
    assert completion.choices[3].logprobs is None
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 4


def test_a_single_choice_without_logprobs_keeps_the_old_shape() -> None:
    accumulator = CompletionAccumulator("m", "chatcmpl-x", 1)
    for event in (Text("hi"), Done(StopReason.END, Usage(1, 1))):
        accumulator.add(event)
    result = accumulator.result()
    assert result["choices"][0]["logprobs"] is None
    assert result["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
