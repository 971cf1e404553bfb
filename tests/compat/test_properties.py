"""Property tests: any JSON value, and bodies biased toward valid-looking requests, either parse or raise the
request-validation error (a 400 naming a field the client sent), never anything else."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat.errors import RequestValidationError, render_error
from compat.json_body import parse_json
from compat.openai.chat_request import IGNORED_FIELDS, UNSUPPORTED_FIELDS, ChatRequest, parse_chat_request
from compat.openai.embeddings import EmbeddingsRequest, parse_embeddings_request

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes any JSON at all."""
    return st.one_of(plausible, plausible, plausible, JSON)


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """An object whose values are mostly plausible, sometimes any JSON (reaches the type checks)."""
    return st.fixed_dictionaries(
        {k: field(v) for k, v in required.items()}, optional={k: field(v) for k, v in (optional or {}).items()}
    )


PNG_URL = "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
URLS = st.sampled_from(
    [PNG_URL, "https://example.com/a.png", "data:image/png;base64,@@", "data:image/bmp;base64,AA"]
)
PART = obj(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "video"])},
    {
        "text": st.text(max_size=8),
        "refusal": st.text(max_size=8),
        "image_url": obj({"url": URLS}, {"detail": st.sampled_from(["auto", "low", "high", "ultra"])}),
    },
)
CONTENT = st.one_of(st.text(max_size=8), st.lists(PART, max_size=3))
ARGUMENTS = st.sampled_from(["{}", '{"a": 1}', "[1]", "{", "NaN", '"x"'])
TOOL_CALL = obj(
    {
        "id": st.sampled_from(["c1", "c2", ""]),
        "type": st.sampled_from(["function", "custom"]),
        "function": obj({"name": st.sampled_from(["f", "g", ""]), "arguments": ARGUMENTS}),
    }
)
MESSAGE = obj(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot"])},
    {
        "content": CONTENT,
        "tool_calls": st.lists(TOOL_CALL, max_size=2),
        "tool_call_id": st.sampled_from(["c1", "c2", "zz"]),
        "name": st.text(max_size=4),
        "function_call": JSON,
        "audio": JSON,
    },
)
TOOL = obj(
    {
        "type": st.sampled_from(["function", "custom"]),
        "function": obj(
            {"name": st.sampled_from(["f", "g", "bad name", "x" * 65])},
            {"parameters": st.dictionaries(st.text(max_size=4), JSON, max_size=2), "strict": st.booleans()},
        ),
    }
)
TOOL_CHOICE = st.one_of(
    st.sampled_from(["auto", "none", "required", "sometimes"]),
    obj(
        {
            "type": st.sampled_from(["function", "allowed_tools"]),
            "function": obj({"name": st.sampled_from(["f", "h"])}),
        }
    ),
)
RESPONSE_FORMAT = obj(
    {"type": st.sampled_from(["text", "json_object", "json_schema", "yaml"])},
    {
        "json_schema": obj(
            {"name": st.sampled_from(["s", "bad name"]), "schema": st.dictionaries(st.text(max_size=3), JSON)}
        )
    },
)
SMALL_INTS = st.integers(min_value=-2, max_value=30)
UNIT = st.floats(min_value=-0.5, max_value=2.5)
CHAT_OPTIONAL: dict[str, Any] = {
    "temperature": UNIT,
    "top_p": UNIT,
    "top_k": SMALL_INTS,
    "min_p": UNIT,
    "n": SMALL_INTS,
    "stream": st.booleans(),
    "stream_options": obj({}, {"include_usage": st.booleans(), "include_obfuscation": st.booleans()}),
    "stop": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=5)),
    "max_tokens": SMALL_INTS,
    "max_completion_tokens": SMALL_INTS,
    "presence_penalty": st.floats(min_value=-3, max_value=3),
    "frequency_penalty": st.floats(min_value=-3, max_value=3),
    "logit_bias": st.dictionaries(st.sampled_from(["1", "50256", "x", "-1"]), st.integers(-200, 200), max_size=3),
    "logprobs": st.booleans(),
    "top_logprobs": SMALL_INTS,
    "seed": st.integers(),
    "user": st.text(max_size=4),
    "tools": st.lists(TOOL, max_size=3),
    "tool_choice": TOOL_CHOICE,
    "parallel_tool_calls": st.booleans(),
    "response_format": RESPONSE_FORMAT,
    "modalities": st.lists(st.sampled_from(["text", "audio", "video"]), max_size=2),
    **dict.fromkeys(UNSUPPORTED_FIELDS, st.none()),
    **dict.fromkeys(
        IGNORED_FIELDS,
        st.one_of(st.text(max_size=3), st.booleans(), st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
    ),
}
CHAT_BODY = obj(
    {"model": st.sampled_from(["m", ""]), "messages": st.lists(MESSAGE, min_size=1, max_size=4)}, CHAT_OPTIONAL
)

# Bodies that are valid more often than not, so that the success path is exercised too.
VALID_LOOKING_CHAT = st.fixed_dictionaries(
    {
        "model": st.just("m"),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "developer", "user", "assistant"]),
                    "content": st.text(max_size=8),
                }
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={
        "temperature": st.floats(min_value=0, max_value=2),
        "top_p": st.floats(min_value=0, max_value=1),
        "n": st.just(1),
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "stop": st.lists(st.text(min_size=1, max_size=3), max_size=4),
        "max_tokens": st.integers(min_value=1, max_value=100),
        "seed": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "tools": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries({"name": st.sampled_from(["f", "g"])}),
                }
            ),
            min_size=1,
            max_size=2,
            unique_by=lambda tool: tool["function"]["name"],
        ),
        "tool_choice": st.sampled_from(["auto", "none"]),
        "response_format": st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
        "user": st.text(max_size=4),
        "service_tier": st.just("auto"),
    },
)

EMBED_INPUT = st.one_of(
    st.text(max_size=6),
    st.lists(st.text(max_size=6), max_size=3),
    st.lists(st.integers(0, 100), max_size=3),
    st.lists(st.lists(st.integers(0, 100), max_size=2), max_size=2),
)
EMBED_BODY = obj(
    {"model": st.sampled_from(["e", ""]), "input": EMBED_INPUT},
    {"encoding_format": st.sampled_from(["float", "base64", "int8"]), "dimensions": SMALL_INTS, "user": st.text()},
)


def check_rejection(error: RequestValidationError, body: object) -> None:
    """The error is a 400 whose ``param``, when set, starts with a field the client sent (or a missing one)."""
    status, _, rendered = render_error(error)
    assert status == 400
    assert rendered["error"]["type"] == "invalid_request_error"
    if error.param is not None:
        assert isinstance(body, dict)
        top = error.param.split(".")[0].split("[")[0]
        assert top in body or error.code == "missing_field"


@PROPERTY_SETTINGS
@given(st.one_of(JSON, CHAT_BODY, CHAT_BODY, VALID_LOOKING_CHAT))
def test_any_json_chat_body_parses_or_is_a_400(body: Any) -> None:
    try:
        result = parse_chat_request(body)
    except RequestValidationError as error:
        check_rejection(error, body)
    else:
        assert isinstance(result, ChatRequest)
        assert result.model == body["model"]
        assert len(result.request.messages) == len(body["messages"])
        assert result.include_usage <= result.stream


@PROPERTY_SETTINGS
@given(st.one_of(JSON, EMBED_BODY, EMBED_BODY))
def test_any_json_embeddings_body_parses_or_is_a_400(body: Any) -> None:
    try:
        result = parse_embeddings_request(body)
    except RequestValidationError as error:
        check_rejection(error, body)
    else:
        assert isinstance(result, EmbeddingsRequest)
        given_input = body["input"]
        if result.request.token_ids:  # [ids] is one input, [[ids], ...] several
            assert not result.request.inputs
            nested = [given_input] if isinstance(given_input[0], int) else given_input
            assert [list(ids) for ids in result.request.token_ids] == nested
            assert all(result.request.token_ids)
        else:
            inputs = [given_input] if isinstance(given_input, str) else given_input
            assert list(result.request.inputs) == inputs
            assert all(result.request.inputs)


@PROPERTY_SETTINGS
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_decode_or_are_invalid_json(raw: bytes) -> None:
    try:
        parse_json(raw)
    except RequestValidationError as error:
        assert (error.code, error.param) == ("invalid_json", None)


FINITE_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@PROPERTY_SETTINGS
@given(FINITE_JSON, st.booleans())
def test_encoded_json_decodes_to_the_same_value(value: Any, ascii_only: bool) -> None:
    # st.text() never makes unpaired surrogates, the one kind of valid JSON text parse_json refuses.
    assert parse_json(json.dumps(value, ensure_ascii=ascii_only).encode()) == value
