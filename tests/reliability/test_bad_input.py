"""Bad input over real HTTP: thousands of generated request bodies, never a 5xx, every error in OpenAI's shape.

Hypothesis generates bodies for ``/v1/chat/completions`` and ``/v1/embeddings``: valid requests, valid requests
with one or two fields replaced by arbitrary JSON, OpenAI-shaped bodies whose every known field (and an unknown
one) holds either a plausible value or arbitrary JSON, any JSON document, truncated JSON and raw bytes. Each is
posted to one real daemon (mock backend, echo replies, 8-dimension embeddings) by a synchronous httpx client.
The server must answer every one with a status below 500; a 200 must be a well-formed answer; anything else
must be an OpenAI error object ``{"message", "type", "param", "code"}``. At least 2,000 bodies are sent (the
tests count them), and both outcomes must occur often: the generators reach the answering path too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.openai.chat_request import IGNORED_FIELDS, MAPPED_FIELDS, UNSUPPORTED_FIELDS
from tests.daemon_harness import MOCK_MODEL, mock_config
from tests.reliability.threaded_daemon import threaded_daemon

CHAT_CASES = 1100
EMBED_CASES = 1000
ERROR_TYPES = {"invalid_request_error", "rate_limit_error", "server_error"}

# --- strategies -------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
short_text = st.text(max_size=40)
models = st.sampled_from([MOCK_MODEL, "gpt-4o", "", " ", "mock-echo\x00"]) | st.text(max_size=12) | any_json

content_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "refusal", "file"]) | short_text},
    optional={
        "text": short_text | any_json,
        "image_url": st.fixed_dictionaries({"url": st.sampled_from(["data:image/png;base64,AAAA", "http://x/y"])})
        | any_json,
    },
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "function"]) | any_json},
    optional={
        "content": short_text | st.lists(content_part, max_size=3) | any_json,
        "name": short_text | any_json,
        "tool_calls": st.lists(any_json, max_size=2),
        "tool_call_id": short_text | any_json,
    },
)
tool = st.fixed_dictionaries(
    {"type": st.just("function") | any_json},
    optional={
        "function": st.fixed_dictionaries(
            {"name": short_text | any_json},
            optional={"parameters": st.just({"type": "object", "properties": {}}) | any_json},
        )
        | any_json
    },
)

#: A plausible value for each field whose shape we know; every other field gets arbitrary JSON.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans() | any_json}),
    "temperature": st.floats(-1, 3),
    "top_p": st.floats(-1, 2),
    "top_k": st.integers(-5, 100),
    "min_p": st.floats(-1, 2),
    "n": st.integers(-1, 3),
    "stop": short_text | st.lists(short_text, max_size=5),
    "max_tokens": st.integers(-2, 50),
    "max_completion_tokens": st.integers(-2, 50),
    "presence_penalty": st.floats(-3, 3),
    "frequency_penalty": st.floats(-3, 3),
    "logit_bias": st.dictionaries(st.text("0123456789-x", max_size=6), st.floats(-200, 200), max_size=3),
    "seed": st.integers(),
    "tools": st.lists(tool, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required"])
    | st.fixed_dictionaries(
        {"type": st.just("function"), "function": st.fixed_dictionaries({"name": short_text})}
    ),
    "response_format": st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "json_object", "json_schema"]) | short_text},
        optional={"json_schema": st.fixed_dictionaries({"name": short_text, "schema": any_json})},
    ),
}
OPTIONAL_FIELDS = sorted((MAPPED_FIELDS | set(UNSUPPORTED_FIELDS) | set(IGNORED_FIELDS)) - {"model", "messages"})


def field_value(name: str) -> st.SearchStrategy[Any]:
    plausible = PLAUSIBLE.get(name)
    return any_json if plausible is None else plausible | any_json


chat_shaped = st.fixed_dictionaries(
    {"model": models, "messages": st.lists(message, max_size=4) | any_json},
    optional={name: field_value(name) for name in [*OPTIONAL_FIELDS, "x_unknown_extension"]},
)
#: Valid requests (most are answered), and valid requests with one or two fields replaced by anything.
valid_chat = st.fixed_dictionaries(
    {
        "model": st.just(MOCK_MODEL),
        "messages": st.tuples(
            st.lists(
                st.fixed_dictionaries({"role": st.sampled_from(["system", "assistant"]), "content": short_text})
            ),
            st.fixed_dictionaries(
                {
                    "role": st.just("user"),
                    "content": short_text
                    | st.lists(
                        st.fixed_dictionaries({"type": st.just("text"), "text": short_text}),
                        min_size=1,
                        max_size=2,
                    ),
                }
            ),
        ).map(lambda pair: [*pair[0], pair[1]]),
    },
    optional={
        "stream": st.booleans(),
        "max_tokens": st.integers(1, 20),
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0.01, 1),
        "stop": st.lists(st.text(min_size=1, max_size=4), max_size=3),
        "seed": st.integers(0, 2**31),
        "user": short_text,
    },
)


def mutated(valid: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    replacements = st.dictionaries(st.sampled_from(fields), any_json, min_size=1, max_size=2)
    return st.tuples(valid, replacements).map(lambda pair: {**pair[0], **pair[1]})


chat_bodies = st.one_of(
    valid_chat, mutated(valid_chat, ["model", "messages", *OPTIONAL_FIELDS]), chat_shaped, chat_shaped
)

valid_embeddings = st.fixed_dictionaries(
    {
        "model": st.just(MOCK_MODEL),
        "input": st.text(min_size=1, max_size=30)
        | st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4),
    },
    optional={
        "encoding_format": st.sampled_from(["float", "base64"]),
        "dimensions": st.integers(1, 8),
        "user": short_text,
    },
)
embeddings_shaped = st.fixed_dictionaries(
    {"model": models},
    optional={
        "input": short_text
        | st.lists(short_text, max_size=4)
        | st.lists(st.integers(-1, 70000), max_size=4)
        | st.lists(st.lists(st.integers(-1, 70000), max_size=3), max_size=3)
        | any_json,
        "encoding_format": st.sampled_from(["float", "base64"]) | any_json,
        "dimensions": st.integers(-2, 20) | any_json,
        "user": short_text | any_json,
    },
)
embeddings_bodies = st.one_of(
    valid_embeddings,
    mutated(valid_embeddings, ["model", "input", "encoding_format", "dimensions"]),
    embeddings_shaped,
    embeddings_shaped,
)


def encoded(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Mostly OpenAI-shaped JSON (valid, mutated or wild); also any JSON document, broken JSON, raw bytes."""
    as_json = shaped.map(lambda body: json.dumps(body).encode())
    documents = any_json.map(lambda value: json.dumps(value).encode())
    truncated = st.tuples(shaped, st.integers(0, 200)).map(lambda pair: json.dumps(pair[0]).encode()[: pair[1]])
    return st.one_of(as_json, as_json, as_json, documents, truncated, st.binary(max_size=200))


# --- checks -----------------------------------------------------------------------------------------------


def check_error_shape(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] in ERROR_TYPES, error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


def check_chat_answer(response: httpx.Response) -> None:
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
        assert events[-1] == "[DONE]", events[-1:]
        assert all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1])
        return
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"


def check_embeddings_answer(response: httpx.Response) -> None:
    body = response.json()
    assert body["object"] == "list"
    assert all(item["object"] == "embedding" for item in body["data"])


def post_and_check(
    client: httpx.Client, path: str, body: bytes, check_ok: Callable[[httpx.Response], None]
) -> int:
    """Post one body, check the answer; returns its status."""
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code < 500, (body, response.status_code, response.text)
    if response.status_code == 200:
        check_ok(response)
    else:
        assert 400 <= response.status_code < 500
        check_error_shape(response)
    return response.status_code


# --- tests ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One daemon for the module (mock echo, 8-dimension embeddings), and a keep-alive client to it."""
    with threaded_daemon(mock_config(embed_dim=8)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def run_cases(
    client: httpx.Client, path: str, bodies: st.SearchStrategy[bytes], cases: int, check_ok: Callable[..., None]
) -> Counter[int]:
    """Post ``cases`` generated bodies to ``path``; returns how many got each status."""
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),  # each example is a real HTTP round trip, slow by design
    )
    @given(body=bodies)
    def case(body: bytes) -> None:
        statuses[post_and_check(client, path, body, check_ok)] += 1

    case()
    return statuses


def test_generated_chat_bodies_never_get_a_5xx(client: httpx.Client) -> None:
    statuses = run_cases(client, "/v1/chat/completions", encoded(chat_bodies), CHAT_CASES, check_chat_answer)
    assert statuses.total() >= CHAT_CASES
    # Both paths are exercised: some bodies are answered, most are refused.
    assert statuses[200] >= CHAT_CASES // 10
    assert statuses[400] >= CHAT_CASES // 2


def test_generated_embeddings_bodies_never_get_a_5xx(client: httpx.Client) -> None:
    statuses = run_cases(
        client, "/v1/embeddings", encoded(embeddings_bodies), EMBED_CASES, check_embeddings_answer
    )
    assert statuses.total() >= EMBED_CASES
    assert statuses[200] >= EMBED_CASES // 10
    assert statuses[400] >= EMBED_CASES // 2
