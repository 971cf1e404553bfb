"""A client that does not stream gets its answer from a non-streaming upstream request: what the upstream is
asked, how its one ``chat.completion`` object reaches OpenAI, Anthropic and Responses clients, and what a
malformed, broken, silent or abandoned JSON answer does. Through the whole daemon on real sockets, against
scripted OpenAI-compatible servers in the test's own nursery (the autojump clock drives the timeouts)."""

from __future__ import annotations

import json

import openai
import pytest
import trio

from tests.daemon_harness import wait_until

from .processes import GATEWAY_MODEL
from .scripted import (
    DROP,
    HANG,
    Reply,
    ScriptedUpstream,
    chunk,
    completion,
    gateway,
    json_answer,
    sse,
    text_answer,
    url_status,
)

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": n}} for n in ("get_weather", "get_time", "note")]
#: Three calls, without the ``index`` a stream's pieces carry; arguments with nesting, escapes and non-ASCII.
CALLS = [
    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
    {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    {
        "id": "call_c",
        "type": "function",
        "function": {
            "name": "note",
            "arguments": '{"text": "a \\"quoted\\" \\u00e9t\\u00e9", "tags": [1, {"k": null}]}',
        },
    },
]


async def test_the_upstream_is_asked_to_stream_only_when_the_client_streams(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            stream = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert (reply.choices[0].message.content, streamed) == ("ok", "ok")
    plain, streaming = (r.body for r in upstream_a.requests)
    assert plain["stream"] is False
    assert "stream_options" not in plain
    assert (streaming["stream"], streaming["stream_options"]) == (True, {"include_usage": True})


async def test_a_json_answer_reaches_an_openai_client_whole(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(
        Reply(body=completion({"reasoning_content": "think", "content": "Hello"}, "length", (5, 2))),
        Reply(body=completion({"content": None, "tool_calls": CALLS}, "tool_calls", (9, 30))),
        Reply(body=completion({"reasoning": "vLLM's name", "content": "x", "tool_calls": CALLS[:1]}, "stop")),
        Reply(body=completion({"content": "no usage"}, "content_filter", usage=None)),
    )
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            replies = [
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, tools=TOOLS)  # type: ignore[arg-type]
                for _ in range(4)
            ]
    text, tools, mixed, unknown = replies
    assert text.choices[0].message.content == "Hello"
    assert (text.choices[0].message.model_extra or {})["reasoning_content"] == "think"
    assert text.choices[0].finish_reason == "length"
    assert text.usage is not None and (text.usage.prompt_tokens, text.usage.completion_tokens) == (5, 2)
    calls = tools.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "get_weather", '{"city": "Oslo"}'),
        ("call_b", "get_time", "{}"),
        ("call_c", "note", CALLS[2]["function"]["arguments"]),  # type: ignore[index]
    ]
    assert tools.choices[0].finish_reason == "tool_calls"
    assert tools.usage is not None and tools.usage.total_tokens == 39
    # A server that says "stop" after calling a tool has called it; "reasoning" is read as reasoning_content.
    assert (mixed.choices[0].message.model_extra or {})["reasoning_content"] == "vLLM's name"
    assert mixed.choices[0].finish_reason == "tool_calls"
    assert [c.id for c in mixed.choices[0].message.tool_calls or []] == ["call_a"]
    # No usage in the answer: unknown, reported as 0 rather than guessed.
    assert unknown.choices[0].message.content == "no usage"
    assert unknown.choices[0].finish_reason == "stop"
    assert unknown.usage is not None and (unknown.usage.prompt_tokens, unknown.usage.completion_tokens) == (0, 0)
    assert [r.body["stream"] for r in upstream_a.requests] == [False] * 4


async def test_a_json_answer_reaches_anthropic_and_responses_clients(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    tool_answer = completion({"content": "Let me look.", "tool_calls": CALLS[:1]}, "tool_calls", (7, 4))
    upstream_a.reply(
        Reply(body=tool_answer),
        Reply(body=completion({"content": "Paris"}, "stop", (6, 1), stop_reason="END")),
        Reply(body=tool_answer),
    )
    tool = {"name": "get_weather", "input_schema": {"type": "object"}}
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.http() as http:
            body = {"model": GATEWAY_MODEL, "max_tokens": 50, "messages": MESSAGES, "tools": [tool]}
            message = (await http.post("/v1/messages", json=body)).json()
            stopped = (await http.post("/v1/messages", json={**body, "stop_sequences": ["END"]})).json()
            responses_tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
            response = (
                await http.post(
                    "/v1/responses", json={"model": GATEWAY_MODEL, "input": "weather?", "tools": [responses_tool]}
                )
            ).json()
    assert [r.body["stream"] for r in upstream_a.requests] == [False] * 3
    assert message["content"] == [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (7, 4)
    # vLLM's stop_reason (the matched string) is what tells a stop sequence from the end of the answer.
    assert (stopped["content"], stopped["stop_reason"]) == ([{"type": "text", "text": "Paris"}], "stop_sequence")
    assert response["status"] == "completed"
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["message", "function_call"]
    assert response["output"][0]["content"][0]["text"] == "Let me look."
    call = response["output"][1]
    assert (call["call_id"], call["name"], json.loads(call["arguments"])) == (
        "call_a",
        "get_weather",
        {"city": "Oslo"},
    )
    assert (response["usage"]["input_tokens"], response["usage"]["output_tokens"]) == (7, 4)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(content_type="application/json", steps=("{not json",)), "a body that is not JSON"),
        (Reply(body=[completion()]), "a body that is not a JSON object"),
        (Reply(body={"id": "chatcmpl-1", "object": "chat.completion", "choices": []}), "an answer with no choice"),
        (Reply(body={"choices": {"0": {}}}), "'choices' is not an array"),
        (Reply(body={"choices": [{"index": 1, "message": {"content": "not ours"}}]}), "an answer with no choice"),
        (Reply(body={"choices": [{"index": 0, "message": "text"}]}), "'message' is not an object"),
        (Reply(body=completion({"tool_calls": [{"id": "c", "function": {}}]})), "without a function name"),
        (Reply(body=completion({"tool_calls": [{"function": {"name": "f", "arguments": "{"}}]})), "not a JSON"),
        (Reply(body={"error": {"message": "CUDA out of memory", "code": 500}}), "failed: CUDA out of memory"),
    ],
    ids=["not-json", "array", "no-choices", "choices-object", "other-choice", "message-string",
         "nameless-call", "bad-arguments", "error-with-200"],
)  # fmt: skip
async def test_a_malformed_json_answer_is_a_502_counted_against_the_upstream(
    autojump_clock: trio.abc.Clock,
    upstream_a: ScriptedUpstream,
    upstream_b: ScriptedUpstream,
    reply: Reply,
    message: str,
) -> None:
    upstream_a.reply(reply)
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
            assert message in caught.value.message
            assert message in url_status(d, 0)["last_error"]
            assert d.handle("fleet").breaker.snapshot()["recent_failures"] == 1  # a backend fault
            assert url_status(d, 0)["healthy"]  # a bad answer is not a dead URL, and is not tried elsewhere
            assert upstream_b.requests == []
            # Nothing broke: the next request is served (round robin: by b).
            again = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert again.choices[0].message.content == "ok"
            assert len(upstream_b.requests) == 1


@pytest.mark.parametrize(
    "broken",
    [
        Reply(content_type="application/json", steps=('{"id": "chatcmpl-1", "choi', DROP)),
        Reply(before_headers=DROP),
    ],
    ids=["reset-mid-body", "closed-before-headers"],
)
async def test_a_json_answer_that_breaks_off_moves_the_request_to_the_next_url(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream, broken: Reply
) -> None:
    """Its events are sent only once the whole body is in: nothing reached the client, so another URL may try."""
    upstream_a.reply(broken, broken)  # (a connection closed before the headers is tried once more, fresh)
    upstream_b.reply(json_answer("from ", "b"))
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.client() as client:
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "from b"
            assert len(upstream_b.requests) == 1
            assert url_status(d, 0)["healthy"] is False
            assert d.backend_status("fleet")["failovers"] == 1
            assert d.handle("fleet").breaker.snapshot()["recent_failures"] == 0  # the client saw no failure


async def test_a_json_answer_broken_on_every_url_is_one_502_after_each_url_was_tried_once(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    broken = Reply(content_type="application/json", steps=('{"choices": [', DROP))
    upstream_a.reply(broken)
    upstream_b.reply(broken)
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
            assert (len(upstream_a.requests), len(upstream_b.requests)) == (1, 1)
            assert [url_status(d, i)["healthy"] for i in (0, 1)] == [False, False]


async def test_read_timeout_s_bounds_the_wait_for_a_json_answer_and_a_slow_one_is_not_moved(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    upstream_a.reply(Reply(content_type="application/json", steps=('{"choices": [', HANG)))
    with trio.fail_after(60):
        async with gateway(upstream_a, upstream_b, read_timeout_s=10) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
            assert "read_timeout_s" in caught.value.message
            assert upstream_b.requests == []  # busy is not dead
            assert url_status(d, 0)["healthy"] is True


async def test_a_client_that_leaves_while_the_json_answer_is_awaited_closes_the_upstream_request(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(Reply(content_type="application/json", steps=('{"id": "chatcmpl-1", ', HANG)))
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            async with trio.open_nursery() as nursery:

                async def ask() -> None:
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)

                nursery.start_soon(ask)
                await upstream_a.wait_request()
                await wait_until(lambda: d.backend_status("fleet")["active"] == 1)
                nursery.cancel_scope.cancel()
            await upstream_a.wait_disconnected()
            await wait_until(lambda: d.backend_status("fleet")["active"] == 0)
            assert d.backend_status("fleet")["cancelled"] == 1
            assert url_status(d, 0)["outstanding"] == 0
            assert upstream_a.disconnects == 1


async def test_the_answer_is_read_by_its_content_type_not_by_what_was_asked(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(
        text_answer("streamed ", "anyway"),  # a non-streaming client, a server that streams regardless
        json_answer("one object"),  # a streaming client, a server that never streams
        Reply(body=completion({"content": "typed"}), content_type="application/vnd.example+json; charset=utf-8"),
        Reply(body=completion({"content": "untyped"}), content_type=""),  # neither: read as what was asked
        sse(chunk({"content": "plain"}, "stop"), content_type="text/plain"),  # neither: as asked
    )
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            first = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            stream = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, stream=True)
            second = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            typed = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            untyped = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            stream = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, stream=True)
            plain = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert first.choices[0].message.content == "streamed anyway"
    assert second == "one object"
    assert typed.choices[0].message.content == "typed"
    assert untyped.choices[0].message.content == "untyped"
    assert plain == "plain"
