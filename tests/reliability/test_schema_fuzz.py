"""Client JSON schemas can neither crash a backend nor open its circuit breaker, over real HTTP.

The shapes that used to crash the mock (a 500 the breaker counted, so three requests took a model away for 30 s)
are sent again and again, in ``response_format.json_schema.schema`` and in a forced tool's ``parameters``: each is
a 400 naming the place in the schema, the breaker stays closed with no failure recorded, and the model still
answers. Then hypothesis generates schema shapes (well formed or not, from every keyword JSON Schema defines) and
posts each to one daemon, streamed or not: never a 5xx; an answer is strict JSON (never ``Infinity``); a refusal
names a path inside the schema it refused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.schema import KEYWORD_KINDS
from tests.daemon_harness import MOCK_MODEL, mock_config, running_daemon
from tests.reliability.threaded_daemon import threaded_daemon

SCHEMA_PATH = "response_format.json_schema.schema"
PARAMETERS_PATH = "tools[0].function.parameters"
FUZZ_CASES = 400

#: The issue's crashing shapes, and where the refusal must point (relative to the schema).
CRASHERS: list[tuple[str, dict[str, Any], str]] = [
    ("required a number", {"type": "object", "required": 5}, ".required"),
    ("properties an array", {"type": "object", "properties": []}, ".properties"),
    ("empty enum", {"type": "object", "properties": {"a": {"enum": []}}, "required": ["a"]}, ".properties.a.enum"),
    ("type a number", {"type": "object", "properties": {"a": {"type": 5}}}, ".properties.a.type"),
    ("anyOf a string", {"type": "object", "properties": {"a": {"anyOf": "xy"}}}, ".properties.a.anyOf"),
    ("property not an object", {"type": "object", "properties": {"a": 7}, "required": ["a"]}, ".properties.a"),
    ("dangling ref", {"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}}, ".properties.a.$ref"),
    ("no value", {"type": "object", "properties": {"a": False}, "required": ["a"]}, ""),
]  # fmt: skip


def chat(schema: Any, *, tool: bool, stream: bool = False) -> dict[str, Any]:
    """A chat body carrying ``schema`` as the response format, or as a forced tool's parameters."""
    body: dict[str, Any] = {"model": MOCK_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if tool:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        body["tool_choice"] = "required"
    else:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    return body


@pytest.mark.parametrize("tool", [False, True], ids=["response_format", "tool parameters"])
async def test_crashing_shapes_are_400s_naming_the_place_and_never_open_the_breaker(tool: bool) -> None:
    prefix = PARAMETERS_PATH if tool else SCHEMA_PATH
    with trio.fail_after(60):
        async with running_daemon(mock_config()) as d, d.http() as http:
            for _ in range(4):  # more than the breaker's threshold of 3
                for _name, schema, where in CRASHERS:
                    response = await http.post("/v1/chat/completions", json=chat(schema, tool=tool))
                    assert response.status_code == 400, response.text
                    error = response.json()["error"]
                    assert error["type"] == "invalid_request_error"
                    assert error["param"] == prefix + where, error
                overflow = (b'{"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}], '
                            b'"response_format": {"type": "json_schema", "json_schema": {"name": "s", '
                            b'"schema": {"const": 1e999}}}}')  # fmt: skip
                response = await http.post(
                    "/v1/chat/completions", content=overflow, headers={"content-type": "application/json"}
                )
                assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")
            breaker = (await d.admin_get("/admin/status")).json()["backends"][0]["breaker"]
            assert (breaker["state"], breaker["recent_failures"]) == ("closed", 0)
            fine = await http.post("/v1/chat/completions", json=chat({"type": "object"}, tool=tool))
            assert fine.status_code == 200
            assert d.admission().active == 0


# --- generated shapes -----------------------------------------------------------------------------------

keywords = st.sampled_from(sorted(KEYWORD_KINDS))
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["string", "integer", "number", "object", "array", "null", "boolean", "#", "#/$defs/a",
                       "#/properties/a", "date", "^a+$", "a", ""])
)  # fmt: skip
names = st.sampled_from(["a", "b"])
shapes = st.recursive(
    leaf,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(keywords | st.sampled_from(["a", "b"]), kids, max_size=4)
    ),
    max_leaves=16,
)
objects = st.dictionaries(keywords | st.just("a"), shapes, max_size=5)


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in an answer: {text[:200]!r}")

    return json.loads(text, parse_constant=refuse)


def answer_of(response: httpx.Response, tool: bool) -> str:
    """The JSON text the model answered: the content, or the forced call's arguments (streamed or not)."""
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
        assert events[-1] == "[DONE]", events[-1:]
        deltas = [choice["delta"] for e in events[:-1] for choice in strict_json(e)["choices"]]
        if tool:
            return "".join(call["function"]["arguments"] for d in deltas for call in d.get("tool_calls", ()))
        return "".join(d.get("content") or "" for d in deltas)
    message = strict_json(response.text)["choices"][0]["message"]
    return str(message["tool_calls"][0]["function"]["arguments"] if tool else message["content"])


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with threaded_daemon(mock_config()) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_generated_schemas_are_answered_in_strict_json_or_refused_with_a_path(client: httpx.Client) -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=FUZZ_CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(schema=objects, tool=st.booleans(), stream=st.booleans())
    def case(schema: dict[str, Any], tool: bool, stream: bool) -> None:
        response = client.post("/v1/chat/completions", json=chat(schema, tool=tool, stream=stream))
        assert response.status_code in (200, 400), (schema, response.status_code, response.text)
        if response.status_code == 200:
            answer = strict_json(answer_of(response, tool))
            assert not tool or isinstance(answer, dict)
            outcomes["answered"] += 1
        else:
            error = response.json()["error"]
            assert error["param"].startswith(PARAMETERS_PATH if tool else SCHEMA_PATH), (schema, error)
            outcomes["refused"] += 1

    case()
    assert outcomes.total() >= FUZZ_CASES
    assert outcomes["answered"] >= FUZZ_CASES // 10 and outcomes["refused"] >= FUZZ_CASES // 10, outcomes
    healthy = client.post("/v1/chat/completions", json=chat({"type": "object"}, tool=False))
    assert healthy.status_code == 200  # never 503: the breaker never opened
