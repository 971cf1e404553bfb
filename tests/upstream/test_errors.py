"""What a client sees when the upstream misbehaves: every error path of the ``openai`` backend, through the
whole daemon on real sockets, against scripted OpenAI-compatible servers in the test's own nursery (so the
autojump clock drives the read timeout and the probes)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import trio

from tests.daemon_harness import RunningDaemon, wait_until

from .processes import GATEWAY_MODEL, UPSTREAM_MODEL
from .scripted import (
    DROP,
    HANG,
    Reply,
    ScriptedUpstream,
    chunk,
    error,
    gateway,
    sse,
    text_answer,
    url_status,
    usage_chunk,
)

MESSAGES = [{"role": "user", "content": "hi"}]


def breaker_state(d: RunningDaemon) -> str:
    return str(d.handle("fleet").breaker.state)


async def test_an_upstream_4xx_reaches_the_client_with_its_status_and_error_object(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(
        *[error(400, "temperature must be <= 2", param="temperature", code="invalid_value")] * 4,
        Reply(status=422, body={"detail": [{"loc": ["body", "top_p"], "msg": "too big"}]}),
    )
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            for _ in range(4):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                assert caught.value.status_code == 400
                assert caught.value.body == {
                    "message": "temperature must be <= 2",
                    "type": "invalid_request_error",
                    "param": "temperature",
                    "code": "invalid_value",
                }
            with pytest.raises(openai.UnprocessableEntityError) as unprocessable:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert "too big" in unprocessable.value.message
            # The client's mistakes say nothing about the upstream's health.
            assert breaker_state(d) == "closed"
            assert url_status(d, 0)["healthy"] is True
            assert len(upstream_a.requests) == 5


async def test_an_upstream_429_is_upstream_rate_limited_with_its_retry_after(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    upstream_a.reply(Reply(status=429, body={"error": {"message": "slow down"}}, headers=(("retry-after", "7"),)))
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.client() as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert caught.value.response.headers["retry-after"] == "7"
            assert caught.value.code == "upstream_rate_limited"
            assert "slow down" in caught.value.message
            assert upstream_b.requests == []  # a rate limit is an answer, not a dead URL: no failover
            assert url_status(d, 0)["healthy"] is True


async def test_a_5xx_with_no_other_url_is_502_and_the_url_returns_once_its_probe_passes(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(error(500, "CUDA out of memory"))
    with trio.fail_after(60):
        async with gateway(upstream_a, health_interval_s=1) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert caught.value.status_code == 502
            assert caught.value.code == "upstream_error"
            assert "CUDA out of memory" in caught.value.message
            assert url_status(d, 0)["healthy"] is False
            assert url_status(d, 0)["last_error"] == "HTTP 500"
            # Its probe passes again: it is back, and serves.
            await wait_until(lambda: url_status(d, 0)["healthy"])
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "ok"


@pytest.mark.parametrize(
    ("failures", "tries"),
    [((error(503, "overloaded"),), 1), ((Reply(before_headers=DROP),) * 2, 2)],
    ids=["5xx", "closed-before-headers-twice"],
)
async def test_a_failure_before_the_first_byte_moves_the_request_to_the_next_url(
    autojump_clock: trio.abc.Clock,
    upstream_a: ScriptedUpstream,
    upstream_b: ScriptedUpstream,
    failures: tuple[Reply, ...],
    tries: int,
) -> None:
    upstream_a.reply(*failures)
    upstream_b.reply(text_answer("from ", "b"))
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.client() as client:
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert reply.choices[0].message.content == "from b"
            assert (len(upstream_a.requests), len(upstream_b.requests)) == (tries, 1)
            assert url_status(d, 0)["healthy"] is False
            assert d.backend_status("fleet")["failovers"] == 1
            assert breaker_state(d) == "closed"


async def test_a_connection_closed_before_the_answer_is_tried_once_more_on_a_fresh_one(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(text_answer("first"), Reply(before_headers=DROP), text_answer("second"))
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            for expected in ("first", "second"):  # the second goes out on the kept-alive connection first
                reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                assert reply.choices[0].message.content == expected
            assert len(upstream_a.requests) == 3
            assert url_status(d, 0)["healthy"] is True


async def test_an_upstream_that_closes_idle_connections_at_once_costs_no_request_anything(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    """The pool sees the server's close on an idle connection before reusing it, and opens a new one."""
    upstream_a.close_after_answer = True
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            before = upstream_a.connections
            for expected in ("first", "second", "third"):
                upstream_a.reply(text_answer(expected))
                reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                assert reply.choices[0].message.content == expected
                await trio.sleep(0.01)  # the server's close arrives while the connection is idle
            assert len(upstream_a.requests) == 3
            assert upstream_a.connections - before == 2  # the first went out on the boot probe's connection
            assert url_status(d, 0)["healthy"] is True
            assert url_status(d, 0)["last_error"] is None


async def test_a_failure_after_the_first_byte_is_an_in_band_error_and_is_never_retried(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    upstream_a.reply(sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "hel"}), DROP, done=False))
    with trio.fail_after(30):
        async with gateway(upstream_a, upstream_b) as d, d.http() as http:
            body = {"model": GATEWAY_MODEL, "messages": MESSAGES, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
            assert any('"content":"hel"' in event for event in events[:-1])
            assert events[-1].startswith('data: {"error":')
            assert "upstream_error" in events[-1]
            assert "data: [DONE]" not in events
            assert upstream_b.requests == []


async def test_an_upstream_that_goes_silent_is_a_502_after_read_timeout_s_without_failover(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, upstream_b: ScriptedUpstream
) -> None:
    upstream_a.reply(Reply(before_headers=HANG))
    with trio.fail_after(60):
        async with gateway(upstream_a, upstream_b, read_timeout_s=10) as d, d.client() as client:
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert caught.value.status_code == 502
            assert "read_timeout_s" in caught.value.message
            assert upstream_b.requests == []  # busy is not dead
            assert url_status(d, 0)["healthy"] is True
            assert "read_timeout_s" in url_status(d, 0)["last_error"]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_upstream_key_keeps_its_status_but_never_shows_the_key_and_tells_the_operator(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture, upstream_a: ScriptedUpstream, status: int
) -> None:
    refusal = error(status, "Incorrect API key provided: sk-abc***wxyz", type="invalid_request_error")
    upstream_a.reply(*[refusal] * 3)
    with trio.fail_after(30):
        async with gateway(upstream_a, api_key="sk-abcdefghijklmnopqrstuvwxyz") as d, d.client() as client:
            for _ in range(3):
                with pytest.raises(openai.APIStatusError) as caught:
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                assert caught.value.status_code == status
                assert caught.value.body == {
                    "message": "the upstream server refused the API key configured for this backend; "
                    "the operator must fix it",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            assert len(upstream_a.requests) == 3
            assert breaker_state(d) == "closed"  # not a dead upstream
            assert url_status(d, 0)["healthy"] is True
            assert url_status(d, 0)["last_error"] == f"HTTP {status}: the upstream refused the configured API key"
            lines = [r.getMessage() for r in caplog.records if "refused the configured API key" in r.getMessage()]
            assert len(lines) == 1  # when it starts, not once per request
            assert not any("sk-abc" in r.getMessage() for r in caplog.records)


async def test_a_dead_upstream_opens_the_breaker_and_all_down_is_503_backend_unavailable(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(*[error(500, "boom")] * 3)
    with trio.fail_after(60):
        async with gateway(upstream_a, health_interval_s=1) as d, d.client() as client:
            for _ in range(3):
                with pytest.raises(openai.APIStatusError):
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                await wait_until(lambda: url_status(d, 0)["healthy"])  # back after each probe
            assert breaker_state(d) == "open"
            # Now the probes fail too: the URL stays down, the backend is not ready, requests get 503 at once.
            upstream_a.probe_status = 503
            await wait_until(lambda: not url_status(d, 0)["healthy"])
            with pytest.raises(openai.APIStatusError) as caught:
                await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
            assert (caught.value.status_code, caught.value.code) == (503, "backend_unavailable")
            assert len(upstream_a.requests) == 3
            assert url_status(d, 0)["last_error"] == "probe failed: HTTP 503"


async def test_a_malformed_stream_is_an_upstream_error_not_a_crash(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(
        sse("data: {not json\n\n"),
        sse(chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{oops"}}]})),
        sse(chunk({"content": "x"}), done=False),  # ends with neither a finish_reason nor [DONE]
    )
    with trio.fail_after(30):
        async with gateway(upstream_a, health_interval_s=1) as d, d.client() as client:
            messages = []
            for _ in range(3):  # (three is also what opens the breaker)
                assert url_status(d, 0)["healthy"]  # a broken stream is not a dead URL
                with pytest.raises(openai.APIStatusError) as caught:
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES)
                assert caught.value.status_code == 502
                messages.append(caught.value.message)
            assert "not JSON" in messages[0]
            assert "not a JSON object" in messages[1]
            assert "before the answer was complete" in messages[2]


async def test_the_request_the_upstream_receives(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_KEY", "sk-upstream-secret-42")
    image = "data:image/png;base64,iVBORw0KGgo="
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time", "description": "Now.", "strict": True}},
    ]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with trio.fail_after(30):
        async with gateway(upstream_a, api_key_env="FLEET_KEY") as d, d.client() as client:
            await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=messages,  # type: ignore[arg-type]
                tools=tools,  # type: ignore[arg-type]
                tool_choice={"type": "function", "function": {"name": "get_time"}},
                parallel_tool_calls=False,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "out", "schema": schema, "strict": True},
                },
                temperature=0.5,
                top_p=0.9,
                max_tokens=20,
                stop=["END"],
                seed=7,
                presence_penalty=0.1,
                frequency_penalty=0.2,
                logit_bias={"42": -100},
                extra_body={"top_k": 40, "min_p": 0.05},
            )
            status = (await d.admin_get("/admin/status")).text
    seen = upstream_a.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-upstream-secret-42"
    assert "sk-upstream-secret-42" not in status
    assert seen.body == {
        "model": UPSTREAM_MODEL,
        "messages": messages,  # as sent: the OpenAI shape passes through unchanged
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "max_tokens": 20,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stop": ["END"],
        "logit_bias": {"42": -100},
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        },
        "stream": False,  # the client did not stream: one JSON answer, which always carries usage
    }


def tool_piece(index: int, **fields: Any) -> dict[str, Any]:
    function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
    call = {"index": index, **({"id": fields["id"]} if "id" in fields else {}), "function": function}
    return chunk({"tool_calls": [call]})


TOOL_STREAM = sse(
    chunk({"role": "assistant", "content": None}),
    tool_piece(0, id="call_a", name="get_weather", arguments=""),
    tool_piece(0, arguments='{"ci'),
    tool_piece(0, arguments='ty": "Oslo"}'),
    tool_piece(1, id="call_b", name="get_time", arguments='{"tz"'),
    tool_piece(1, arguments=': "UTC"}'),
    chunk({}, "tool_calls"),
    usage_chunk(9, 4),
)


async def test_streamed_tool_call_argument_pieces_arrive_as_whole_calls(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(TOOL_STREAM, TOOL_STREAM)
    tools = [{"type": "function", "function": {"name": n}} for n in ("get_weather", "get_time")]
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
            calls = reply.choices[0].message.tool_calls or []
            assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
                ("call_a", "get_weather", '{"city": "Oslo"}'),
                ("call_b", "get_time", '{"tz": "UTC"}'),
            ]
            assert reply.choices[0].finish_reason == "tool_calls"
            assert reply.usage is not None and reply.usage.total_tokens == 13
            stream = await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=MESSAGES,
                tools=tools,
                stream=True,  # type: ignore[arg-type]
            )
            pieces = [
                c.choices[0].delta.tool_calls async for c in stream if c.choices and c.choices[0].delta.tool_calls
            ]
            assert [(p[0].index, p[0].function.arguments) for p in pieces] == [  # type: ignore[union-attr]
                (0, '{"city": "Oslo"}'),
                (1, '{"tz": "UTC"}'),
            ]


async def test_usage_is_always_asked_of_the_upstream_and_shown_only_as_the_client_asked(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    answer = sse(
        chunk({"role": "assistant", "reasoning_content": "think"}),
        chunk({"content": "yes"}),
        chunk({}, "length"),
        usage_chunk(5, 1),
    )
    upstream_a.reply(answer, answer)
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.http() as http:
            plain = {"model": GATEWAY_MODEL, "messages": MESSAGES, "stream": True}
            with_usage = {**plain, "stream_options": {"include_usage": True}}
            bodies = []
            for body in (plain, with_usage):
                reply = await http.post("/v1/chat/completions", json=body)
                bodies.append(reply.text)
    assert [r.body["stream_options"] for r in upstream_a.requests] == [{"include_usage": True}] * 2
    assert '"usage"' not in bodies[0]
    assert '"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6' in bodies[1]
    for text in bodies:
        assert '"reasoning_content":"think"' in text
        assert '"finish_reason":"length"' in text
        assert text.endswith("data: [DONE]\n\n")


async def test_embeddings_are_forwarded_when_embed_is_true(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    vectors = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    upstream_a.reply(Reply(body=vectors), error(400, "input too long", param="input"))
    with trio.fail_after(30):
        async with gateway(upstream_a, embed=True) as d, d.client() as client:
            result = await client.embeddings.create(model=GATEWAY_MODEL, input=["a", "b"], dimensions=2)
            assert [e.embedding for e in result.data] == [[1.0, 0.0], [0.0, 1.0]]
            assert result.usage.prompt_tokens == 4
            with pytest.raises(openai.BadRequestError) as caught:
                await client.embeddings.create(model=GATEWAY_MODEL, input="x" * 10)
            assert caught.value.body["param"] == "input"  # type: ignore[index]
    assert upstream_a.requests[0].path == "/v1/embeddings"
    assert upstream_a.requests[0].body == {
        "model": UPSTREAM_MODEL,
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 2,
    }


async def test_without_embed_the_model_takes_no_embeddings(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError):
                await client.embeddings.create(model=GATEWAY_MODEL, input="a")
    assert upstream_a.requests == []


async def test_a_client_that_leaves_closes_the_upstream_request(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    upstream_a.reply(sse(chunk({"role": "assistant", "content": "so"}), HANG))
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.http() as http:
            body = {"model": GATEWAY_MODEL, "messages": MESSAGES, "stream": True}
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for line in response.aiter_lines():
                    if "so" in line:
                        break
            await upstream_a.wait_disconnected()
            await wait_until(lambda: d.backend_status("fleet")["active"] == 0)
            assert d.backend_status("fleet")["cancelled"] == 1
            assert d.backend_status("fleet")["base_urls"][0]["outstanding"] == 0


async def test_n_choices_logprobs_and_raw_prompts_are_400_for_the_upstream_backend(
    autojump_clock: trio.abc.Clock, upstream_a: ScriptedUpstream
) -> None:
    """The ``openai`` backend forwards one choice without log probabilities and only conversations: asking it
    for more is refused naming the field, before anything reaches the upstream and without counting against
    its breaker."""
    with trio.fail_after(30):
        async with gateway(upstream_a) as d, d.client() as client:
            refused = []
            for fields in ({"n": 2}, {"logprobs": True}):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, **fields)
                refused.append((caught.value.code, caught.value.param))
            with pytest.raises(openai.BadRequestError) as caught:
                await client.completions.create(model=GATEWAY_MODEL, prompt="Once upon")
            refused.append((caught.value.code, caught.value.param))
            still = await client.chat.completions.create(model=GATEWAY_MODEL, messages=MESSAGES, n=1)
            assert breaker_state(d) == "closed"
    assert refused == [("unsupported_parameter", "n"), ("unsupported_parameter", "logprobs"),
                       ("unsupported_parameter", "model")]  # fmt: skip
    assert still.choices[0].message.content
    assert len(upstream_a.requests) == 1
