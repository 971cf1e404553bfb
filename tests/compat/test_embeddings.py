"""Embeddings: request bodies -> `EmbeddingsRequest`, engine results -> OpenAI's ``list`` object.

Both encodings are read back with the openai SDK: the float form through its response model (validated), the
base64 form the way the SDK's client reads it (models built without validation, as the SDK does by default, then
the SDK's own decoder, which it applies when a caller leaves ``encoding_format`` unset and so asks for base64).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from openai import omit
from openai.lib._parsing._embeddings import parse_embedding_response
from openai.types import CreateEmbeddingResponse, embedding_create_params
from pydantic import TypeAdapter

from adapters.errors import Internal
from adapters.types import EmbedResolved, EmbedResult
from compat.errors import RequestValidationError
from compat.openai.embeddings import (
    MAX_INPUTS,
    MAX_TOKEN_ID,
    EmbeddingsRequest,
    parse_embeddings_request,
    render_embeddings,
)

SDK_PARAMS = TypeAdapter(embedding_create_params.EmbeddingCreateParams)


def request(*inputs: str, encoding_format: str = "float", dimensions: int | None = None) -> EmbeddingsRequest:
    return EmbeddingsRequest("e", EmbedResolved("e", inputs, dimensions), encoding_format)


def tokens(*ids: tuple[int, ...]) -> EmbeddingsRequest:
    return EmbeddingsRequest("e", EmbedResolved("e", (), None, token_ids=ids), "float")


VALID: list[tuple[str, dict[str, Any], EmbeddingsRequest]] = [
    ("one string", {"input": "hello"}, request("hello")),
    ("list of strings", {"input": ["a", "b c"]}, request("a", "b c")),
    ("base64", {"input": "x", "encoding_format": "base64"}, request("x", encoding_format="base64")),
    ("float spelled out", {"input": "x", "encoding_format": "float"}, request("x")),
    ("dimensions", {"input": "x", "dimensions": 8}, request("x", dimensions=8)),
    ("user is ignored", {"input": "x", "user": "u-1"}, request("x")),
    ("most inputs", {"input": ["x"] * MAX_INPUTS}, request(*["x"] * MAX_INPUTS)),
    ("token ids", {"input": [12, 34, 56]}, tokens((12, 34, 56))),
    ("token id lists", {"input": [[1, 2], [0], [MAX_TOKEN_ID]]}, tokens((1, 2), (0,), (MAX_TOKEN_ID,))),
    ("most token id lists", {"input": [[7]] * MAX_INPUTS}, tokens(*[(7,)] * MAX_INPUTS)),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_bodies(body: dict[str, Any], expected: EmbeddingsRequest) -> None:
    full = {"model": "e", **body}
    SDK_PARAMS.validate_python(full)
    assert parse_embeddings_request(full) == expected


def test_null_means_not_given() -> None:
    body = {"model": "e", "input": "x", "encoding_format": None, "dimensions": None, "user": None}
    assert parse_embeddings_request(body) == request("x")


INVALID: list[tuple[str, dict[str, Any], type[RequestValidationError], str | None, str]] = [
    ("model missing", {"model": None}, RequestValidationError, "model", "invalid_type"),
    ("input missing", {"input": None}, RequestValidationError, "input", "invalid_type"),
    ("input empty string", {"input": ""}, RequestValidationError, "input", "invalid_value"),
    ("input empty list", {"input": []}, RequestValidationError, "input", "invalid_value"),
    ("input item empty", {"input": ["a", ""]}, RequestValidationError, "input[1]", "invalid_value"),
    ("input item a number", {"input": ["a", 1]}, RequestValidationError, "input[1]", "invalid_type"),
    ("input item a bool", {"input": [True]}, RequestValidationError, "input[0]", "invalid_type"),
    ("input an object", {"input": {"text": "a"}}, RequestValidationError, "input", "invalid_type"),
    ("too many inputs", {"input": ["x"] * (MAX_INPUTS + 1)}, RequestValidationError, "input", "invalid_value"),
    ("token id negative", {"input": [1, -2]}, RequestValidationError, "input[1]", "invalid_value"),
    (
        "token id too big",
        {"input": [[1], [MAX_TOKEN_ID + 1]]},
        RequestValidationError,
        "input[1][0]",
        "invalid_value",
    ),
    ("token id a decimal", {"input": [1, 2.0]}, RequestValidationError, "input[1]", "invalid_type"),
    ("token id a bool", {"input": [1, True]}, RequestValidationError, "input[1]", "invalid_type"),
    ("token ids mixed with text", {"input": [1, "a"]}, RequestValidationError, "input[1]", "invalid_type"),
    ("token id list empty", {"input": [[1], []]}, RequestValidationError, "input[1]", "invalid_value"),
    ("token id list then text", {"input": [[1], "a"]}, RequestValidationError, "input[1]", "invalid_type"),
    (
        "too many token id lists",
        {"input": [[1]] * (MAX_INPUTS + 1)},
        RequestValidationError,
        "input",
        "invalid_value",
    ),
    ("encoding unknown", {"encoding_format": "int8"}, RequestValidationError, "encoding_format", "invalid_value"),
    ("dimensions zero", {"dimensions": 0}, RequestValidationError, "dimensions", "invalid_value"),
    ("dimensions decimal", {"dimensions": 2.5}, RequestValidationError, "dimensions", "invalid_type"),
    ("user a number", {"user": 1}, RequestValidationError, "user", "invalid_type"),
]


@pytest.mark.parametrize(
    ("overrides", "error", "param", "code"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_bodies(
    overrides: dict[str, Any], error: type[RequestValidationError], param: str | None, code: str
) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_embeddings_request({"model": "e", "input": "x", **overrides})
    assert type(info.value) is error
    assert (info.value.param, info.value.code, info.value.http_status) == (param, code, 400)


@pytest.mark.parametrize("body", [["x"], "x", None, {"input": "x"}], ids=repr)
def test_body_must_be_an_object_with_a_model(body: object) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_embeddings_request(body)
    assert info.value.code in ("invalid_type", "missing_field")


# Values exactly representable in float32, so both encodings must give them back unchanged.
VECTORS = ((0.5, -1.25, 3.0), (0.0, 0.125, -2.0))


def test_float_encoding_exact_form() -> None:
    rendered = render_embeddings(request("a", "b"), EmbedResult(VECTORS, prompt_tokens=4))
    assert rendered == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.25, 3.0]},
            {"object": "embedding", "index": 1, "embedding": [0.0, 0.125, -2.0]},
        ],
        "model": "e",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    parsed = CreateEmbeddingResponse.model_validate(rendered)
    assert [d.embedding for d in parsed.data] == [list(v) for v in VECTORS]


def test_base64_is_little_endian_float32_the_sdk_decodes() -> None:
    rendered = render_embeddings(
        request("a", "b", encoding_format="base64"), EmbedResult(VECTORS, prompt_tokens=2)
    )
    assert rendered["data"][0]["embedding"] == "AAAAPwAAoL8AAEBA"  # 0.5, -1.25, 3.0 as <f4
    parsed = parse_embedding_response(CreateEmbeddingResponse.construct(**rendered), encoding_format=omit)
    assert [d.embedding for d in parsed.data] == [list(v) for v in VECTORS]
    assert [d.index for d in parsed.data] == [0, 1]


def test_base64_rounds_to_float32() -> None:
    rendered = render_embeddings(request("a", encoding_format="base64"), EmbedResult(((0.1,),)))
    parsed = parse_embedding_response(CreateEmbeddingResponse.construct(**rendered), encoding_format=omit)
    assert parsed.data[0].embedding == [struct.unpack("<f", struct.pack("<f", 0.1))[0]]


@pytest.mark.parametrize(
    "result",
    [
        EmbedResult(((1.0,),)),
        EmbedResult(((1.0,), (2.0,), (3.0,))),
        EmbedResult(((float("nan"),), (1.0,))),
        EmbedResult(((1.0,), (float("-inf"),))),
        EmbedResult(((1e39,), (1.0,))),
    ],
    ids=["too few vectors", "too many vectors", "nan", "infinity", "beyond float32"],
)
@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_backend_contract_violations_are_internal_errors(result: EmbedResult, encoding_format: str) -> None:
    with pytest.raises(Internal):
        render_embeddings(request("a", "b", encoding_format=encoding_format), result)


def test_token_id_inputs_get_one_vector_each_in_order() -> None:
    rendered = render_embeddings(tokens((1, 2), (3,)), EmbedResult(VECTORS, prompt_tokens=3))
    assert [item["index"] for item in rendered["data"]] == [0, 1]
    assert rendered["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    with pytest.raises(Internal, match="1 vectors for 2 inputs"):
        render_embeddings(tokens((1, 2), (3,)), EmbedResult(VECTORS[:1]))
