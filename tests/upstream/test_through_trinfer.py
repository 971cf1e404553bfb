"""A trinfer process as the upstream: the ``openai`` backend passes the backend conformance suite, and OpenAI
SDK clients get chat (JSON and SSE), tools, JSON output, images and embeddings through it unchanged.

The upstream's mock is deterministic (echo, exact usage), so answers are known exactly. Real clock: the
upstream is another process.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from adapters.backend import Backend
from adapters.mock import count_words, embedding
from adapters.openai_upstream import OpenAIUpstreamBackend
from tests.adapters.conformance import ECHO_PROMPTS, ConformanceProfile, checks_for, status_counter
from tests.daemon_harness import running_daemon

from .processes import GATEWAY_MODEL, UPSTREAM_MODEL, UpstreamServer, gateway_config


def backend_for(upstream: UpstreamServer) -> Backend:
    return OpenAIUpstreamBackend.from_options(
        {"base_urls": [upstream.base_url], "upstream_model": UPSTREAM_MODEL, "embed": True}
    )


def profile_for(upstream: UpstreamServer | None) -> ConformanceProfile:
    def unbooted() -> Backend:
        assert upstream is not None
        return backend_for(upstream)

    return ConformanceProfile(
        model="fleet",
        prompts=ECHO_PROMPTS,
        make_unbooted=unbooted,
        exact_usage=True,
        prompt_tokens=lambda texts: count_words(list(texts)),
        expected_reply=lambda prompt: prompt,
        # Deterministic, but OpenAI's one finish_reason "stop" covers both the end of the answer and a stop
        # sequence, and trinfer's chunks do not say which: the stop-sequence check cannot hold through it.
        deterministic=False,
        cancelled_generations=status_counter("cancelled"),
        unit_embeddings=True,
        timeout_s=30,
    )


@pytest.fixture
async def upstream_backend(echo_upstream: UpstreamServer) -> AsyncIterator[Backend]:
    backend = backend_for(echo_upstream)
    with trio.fail_after(30):
        await backend.boot()
    yield backend
    await backend.stop(5)


@pytest.mark.parametrize("check", checks_for(profile_for(None)))
async def test_conformance(check: Any, upstream_backend: Backend, echo_upstream: UpstreamServer) -> None:
    await check(upstream_backend, profile_for(echo_upstream))


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def test_openai_sdk_clients_get_the_upstreams_answers_unchanged(echo_upstream: UpstreamServer) -> None:
    with trio.fail_after(60):
        async with running_daemon(gateway_config([echo_upstream.base_url], embed=True)) as d, d.client() as client:
            words = "the quick brown fox"
            reply = await client.chat.completions.create(
                model=GATEWAY_MODEL, messages=[{"role": "user", "content": words}], max_tokens=3
            )
            assert reply.model == GATEWAY_MODEL
            assert reply.choices[0].message.content == "the quick brown "
            assert reply.choices[0].finish_reason == "length"
            assert reply.usage is not None
            assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 3)

            stream = await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=[{"role": "user", "content": words}],
                stream=True,
                stream_options={"include_usage": True},
                stop=["fox"],
            )
            chunks = [chunk async for chunk in stream]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "the quick brown "
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
            assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 4

            tool = await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=[{"role": "user", "content": "weather?"}],
                tools=[WEATHER],  # type: ignore[list-item]
                tool_choice="required",
            )
            calls = tool.choices[0].message.tool_calls or []
            assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
                ("get_weather", {"city": ""})
            ]
            assert tool.choices[0].finish_reason == "tool_calls"

            structured = await client.chat.completions.create(
                model=GATEWAY_MODEL,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "look"},
                            {"type": "image_url", "image_url": {"url": PIXEL}},
                        ],
                    }
                ],
                response_format={"type": "json_object"},
            )
            assert json.loads(structured.choices[0].message.content or "") == {"echo": "look"}

            vectors = await client.embeddings.create(model=GATEWAY_MODEL, input=["alpha", "beta"], dimensions=4)
            for got, text in zip(vectors.data, ("alpha", "beta"), strict=True):  # the SDK asks for float32 base64
                assert got.embedding == pytest.approx(embedding(text, 4), rel=1e-6)
