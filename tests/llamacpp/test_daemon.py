"""The llamacpp backend behind the real daemon: real hypercorn on port 0, the official ``openai`` SDK as client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import trio

from adapters.llamacpp.defaults import DEFAULT_CHAT_MODEL_ID

from ..daemon_harness import daemon_process, openai_client, running_daemon, wait_until
from ..ws.wsclient import cancel, chat_body, connect, create, next_frame, until_terminal
from ..ws.wsclient import text_of as ws_text_of

pytestmark = pytest.mark.llama

MODEL = DEFAULT_CHAT_MODEL_ID
EOS = "2"  # SmolLM2's end-of-turn token id, as the SDK sends logit_bias keys


def config(model_path: Path, **options: Any) -> dict[str, Any]:
    backend = {"name": "smollm2", "kind": "llamacpp", "models": [MODEL], "model_path": str(model_path)}
    return {"backends": [{**backend, "active": 1, "queue": 4, **options}]}


async def test_chat_streaming_equals_non_streaming_at_temperature_0(chat_model_path: Path) -> None:
    messages: Any = [{"role": "user", "content": "Name three animals that live in the sea."}]
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            whole = await client.chat.completions.create(
                model=MODEL, messages=messages, temperature=0, seed=3, max_tokens=40
            )
            stream = await client.chat.completions.create(
                model=MODEL, messages=messages, temperature=0, seed=3, max_tokens=40, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            pieces: list[str] = []
            finish: list[str] = []
            usage = None
            async for chunk in stream:
                for choice in chunk.choices:
                    pieces.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finish.append(choice.finish_reason)
                if chunk.usage is not None:
                    usage = chunk.usage
    assert whole.choices[0].message.content
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == [whole.choices[0].finish_reason]
    assert whole.usage is not None and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )


async def test_max_tokens_gives_finish_reason_length(chat_model_path: Path) -> None:
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Tell me a story."}], max_tokens=5,
                logit_bias={EOS: -100},
            )  # fmt: skip
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


async def test_a_prompt_longer_than_the_context_is_a_400_context_length_exceeded(chat_model_path: Path) -> None:
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path, n_ctx=256)) as d, d.client() as client:
            with pytest.raises(openai.BadRequestError) as raised:
                await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "word " * 400}], max_tokens=5
                )
    assert raised.value.code == "context_length_exceeded"
    assert raised.value.param == "messages"


async def test_json_schema_and_forced_tool_calls_through_the_sdk(chat_model_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green", "blue"]}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
        "additionalProperties": False,
    }
    weather = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
        "additionalProperties": False,
    }
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            answer = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Pick a colour and a number, as JSON."}],
                response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
                temperature=0,
                max_tokens=60,
            )
            called = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
                tools=[{"type": "function", "function": {"name": "get_weather", "parameters": weather}}],
                tool_choice="required",
                temperature=0,
                max_tokens=60,
            )
    content = answer.choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), schema)
    assert called.choices[0].finish_reason == "tool_calls"
    calls = called.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    function = getattr(calls[0], "function")  # noqa: B009 - the SDK's union type; a function call here
    assert function.name == "get_weather"
    jsonschema.validate(json.loads(function.arguments), weather)


async def test_a_client_disconnecting_mid_stream_frees_the_model_at_once(chat_model_path: Path) -> None:
    """active = 1. A streaming client goes away after three chunks: the generation's thread stops, the
    admission slot is released, and the next request is admitted without queueing and answered."""
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d:
            async with d.client() as client:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Tell me a very long story."}],
                    max_tokens=400, logit_bias={EOS: -100}, stream=True,
                )  # fmt: skip
                seen = 0
                async for _ in stream:
                    seen += 1
                    if seen == 3:
                        break
                await stream.close()
            assert d.backend_status("smollm2")["tokens_decoded"] < 400
            await wait_until(lambda: d.admission("smollm2").active == 0)
            assert d.backend_status("smollm2")["sequences_running"] == 0
            decoded = d.backend_status("smollm2")["tokens_decoded"]
            async with d.client() as client:
                reply = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
                )
            assert d.admission("smollm2").queued == 0
            assert reply.choices[0].message.content
            assert d.backend_status("smollm2")["cancelled"] == 1
            assert d.backend_status("smollm2")["tokens_decoded"] - decoded <= 9


async def test_admin_status_shows_the_loaded_model(chat_model_path: Path) -> None:
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d:
            status = (await d.admin_get("/admin/status")).json()
    text = json.dumps(status)
    assert str(chat_model_path) in text
    assert '"ready"' in text
    assert "gguf:tokenizer.chat_template" in text


async def test_trinfer_serve_without_config_answers_from_smollm2(chat_model_path: Path, tmp_path: Path) -> None:
    """The embedded default, as a real process: no config, no flags (beyond port 0), an empty models dir."""
    with trio.fail_after(120):
        async with daemon_process("serve", env={"TRINFER_MODELS_DIR": str(tmp_path)}) as proc:
            client = openai_client(proc.base_url)
            async with client:
                models = await client.models.list()
                reply = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=10
                )
    assert [m.id for m in models.data] == [MODEL]
    assert reply.choices[0].message.content


def breaker_state(status: dict[str, Any], name: str = "smollm2") -> Any:
    return next(b["breaker"] for b in status["backends"] if b["name"] == name)


async def test_tool_calls_that_cannot_be_objects_never_open_the_breaker(chat_model_path: Path) -> None:
    """Three requests whose tool parameters are a string schema (400 in compat), then three whose parameters
    are an anyOf of strings (the model's call cannot parse: 500, the model's output, not a backend fault): the
    breaker stays closed and the next normal request is served by the model. Greedy decoding: a sampled call
    could instead run into max_tokens, which is a 200 with finish_reason "length", not the case tested here."""
    as_type: Any = [{"type": "function", "function": {"name": "echo", "parameters": {"type": "string"}}}]
    as_any_of: Any = [
        {"type": "function", "function": {"name": "echo", "parameters": {"anyOf": [{"type": "string"}]}}}
    ]
    messages: Any = [{"role": "user", "content": "Say hi."}]
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            for _ in range(3):
                with pytest.raises(openai.BadRequestError) as bad:
                    await client.chat.completions.create(
                        model=MODEL, messages=messages, tools=as_type, tool_choice="required", max_tokens=20
                    )
                assert bad.value.param == "tools[0].function.parameters"
            for _ in range(3):
                with pytest.raises(openai.InternalServerError) as failed:
                    await client.chat.completions.create(
                        model=MODEL, messages=messages, tools=as_any_of, tool_choice="required",
                        max_tokens=40, temperature=0, seed=7,
                    )  # fmt: skip
                assert failed.value.code == "model_output_unusable"
            breaker = breaker_state((await d.admin_get("/admin/status")).json())
            reply = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
    assert breaker["state"] == "closed" and breaker["recent_failures"] == 0
    assert reply.choices[0].message.content


async def test_a_forced_tool_call_cut_short_shows_no_partial_json(chat_model_path: Path) -> None:
    city = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]}
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": city}}]
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, d.client() as client:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
                tools=tools, tool_choice="required", max_tokens=3, temperature=0,
            )  # fmt: skip
    choice = reply.choices[0]
    assert choice.finish_reason == "length"
    assert not choice.message.content
    assert not choice.message.tool_calls
    assert reply.usage is not None and reply.usage.completion_tokens == 3


async def test_a_websocket_cancel_stops_decoding_and_frees_the_slot(chat_model_path: Path) -> None:
    """active = 1. ``chat.completion.cancel`` after three chunks: the request ends with ``request_cancelled``
    once the worker thread has returned, the slot is free, and the same socket is served again at once."""
    endless = chat_body("Tell me a very long story.", model=MODEL, max_tokens=400, logit_bias={EOS: -100})
    with trio.fail_after(120):
        async with running_daemon(config(chat_model_path)) as d, connect(d) as ws:
            await ws.send_message(json.dumps({"type": "chat.completion.create", "id": "long", "request": endless}))
            for _ in range(3):
                assert (await next_frame(ws))["type"] == "chat.completion.chunk"
            await ws.send_message(cancel("long"))
            frames = (await until_terminal(ws, "long"))["long"]
            assert frames[-1]["type"] == "error"
            assert frames[-1]["error"]["code"] == "request_cancelled"
            status = d.backend_status("smollm2")
            assert (status["cancelled"], status["sequences_running"]) == (1, 0)
            assert status["tokens_decoded"] < 400
            assert d.admission("smollm2").active == 0
            await ws.send_message(create("next", "Say hi.", model=MODEL, max_tokens=8))
            after = (await until_terminal(ws, "next"))["next"]
            assert d.admission("smollm2").queued == 0
    assert after[-1]["type"] == "chat.completion.done"
    assert ws_text_of(after)


async def test_the_stop_deadline_cancels_a_real_model_stream(chat_model_path: Path) -> None:
    """A stream that cannot finish in time (400 tokens, end-of-turn banned) when the stop begins with
    ``stop_timeout_s = 0.2``: at the deadline the SDK gets the in-band error event (no finish, no [DONE]), and
    the generation's worker thread returns, counted as cancelled, well short of the 400 tokens."""
    cfg = {**config(chat_model_path), "server": {"stop_timeout_s": 0.2}}
    seen = 0
    with trio.fail_after(120):
        async with running_daemon(cfg) as d, d.client() as client:
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Tell me a very long story."}],
                max_tokens=400, logit_bias={EOS: -100}, stream=True,
            )  # fmt: skip
            with pytest.raises(openai.APIError) as raised:
                async for _ in stream:
                    seen += 1
                    if seen == 3:
                        d.request_stop()
            await wait_until(lambda: d.backend_status("smollm2")["sequences_running"] == 0)
            status = d.backend_status("smollm2")
    assert "shutting down" in raised.value.message
    assert 3 <= seen < 400
    assert status["cancelled"] == 1
    assert status["tokens_decoded"] < 400


async def test_model_id_serves_a_gguf_file_under_the_chosen_id(chat_model_path: Path) -> None:
    args = ("serve", "--model", str(chat_model_path), "--model-id", "house-model")
    with trio.fail_after(120):
        async with daemon_process(*args) as proc, openai_client(proc.base_url) as client:
            models = await client.models.list()
            reply = await client.chat.completions.create(
                model="house-model", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4
            )
    assert [m.id for m in models.data] == ["house-model"]
    assert reply.model == "house-model"
    assert reply.choices[0].message.content
