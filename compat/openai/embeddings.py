"""``POST /v1/embeddings``: the request as an `EmbeddingsRequest`, the engine result as OpenAI's ``list`` object.

``input`` is one string or an array of up to `MAX_INPUTS` strings, none empty (as OpenAI requires), or token ids:
one array of integers (``[12, 34, 56]``) or an array of up to `MAX_INPUTS` such arrays (``[[1, 2], [3]]``), none
empty, each id a non-negative integer below `MAX_TOKEN_ID`. The ids are the serving model's own vocabulary ids
(not tiktoken's, which is what the OpenAI SDKs and LangChain send by default): the backend checks them against
its vocabulary and context, and a backend that cannot take ids answers 400. Text and ids do not mix in one
request. ``encoding_format: "base64"`` is the little-endian float32 bytes of each vector, which the OpenAI SDKs
decode; ``dimensions`` is only checked here (a backend truncates); ``user`` is ignored.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass
from typing import Any, TypeGuard

from adapters.errors import Internal
from adapters.types import EmbedResolved, EmbedResult

from .._fields import as_str, invalid_type, invalid_value, item_path, opt_choice, opt_int, opt_str, required
from ..errors import RequestValidationError

MAX_INPUTS = 2048
#: Token ids are non-negative int32 values in every vocabulary this server can load.
MAX_TOKEN_ID = 2**31 - 1
ENCODING_FORMATS: tuple[str, ...] = ("float", "base64")
#: The largest finite float32; anything beyond cannot be sent as base64 float32.
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A validated embeddings request: the engine request plus the wire encoding the client asked for."""

    model: str
    request: EmbedResolved
    #: ``"float"`` or ``"base64"``.
    encoding_format: str


def parse_embeddings_request(body: object) -> EmbeddingsRequest:
    """Validate a decoded embeddings body. Raises only `RequestValidationError` (or `UnsupportedParameter`)."""
    if not isinstance(body, dict):
        raise RequestValidationError("The request body must be a JSON object.", code="invalid_type")
    model = as_str(required(body, "model"), "model", non_empty=True)
    value = required(body, "input")
    token_ids = _parse_token_ids(value) if _is_token_input(value) else ()
    inputs = () if token_ids else _parse_inputs(value)
    encoding_format = opt_choice(body, "encoding_format", ENCODING_FORMATS) or "float"
    dimensions = opt_int(body, "dimensions", low=1)
    opt_str(body, "user")
    return EmbeddingsRequest(
        model=model,
        request=EmbedResolved(model=model, inputs=inputs, dimensions=dimensions, token_ids=token_ids),
        encoding_format=encoding_format,
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_token_input(value: object) -> TypeGuard[list[object]]:
    """True when ``input`` is meant as token ids: an array whose first item is an integer or an array."""
    return isinstance(value, list) and bool(value) and (_is_int(value[0]) or isinstance(value[0], list))


def _token_ids(value: object, path: str) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise invalid_type(path, "an array of token ids", value)
    if not value:
        raise invalid_value(path, "expected at least one token id, but got an empty array.")
    for i, item in enumerate(value):
        if not _is_int(item):
            raise invalid_type(item_path(path, i), "an integer token id", item)
        if not 0 <= item <= MAX_TOKEN_ID:
            raise invalid_value(item_path(path, i), f"expected a token id between 0 and {MAX_TOKEN_ID}.")
    return tuple(value)


def _parse_token_ids(value: list[object]) -> tuple[tuple[int, ...], ...]:
    """``[1, 2]`` (one input) or ``[[1, 2], [3]]`` (several), each a non-empty array of token ids."""
    if _is_int(value[0]):
        return (_token_ids(value, "input"),)
    if len(value) > MAX_INPUTS:
        raise invalid_value("input", f"expected at most {MAX_INPUTS} inputs.")
    return tuple(_token_ids(item, item_path("input", i)) for i, item in enumerate(value))


def _parse_inputs(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [value]
        paths = ["input"]
    elif isinstance(value, list):
        if not value:
            raise invalid_value("input", "expected at least one input, but got an empty array.")
        if len(value) > MAX_INPUTS:
            raise invalid_value("input", f"expected at most {MAX_INPUTS} inputs.")
        items = value
        paths = [item_path("input", i) for i in range(len(value))]
    else:
        raise invalid_type("input", "a string, an array of strings or an array of token ids", value)
    inputs = tuple(as_str(item, path) for item, path in zip(items, paths, strict=True))
    for text, path in zip(inputs, paths, strict=True):
        if not text:
            raise invalid_value(path, "inputs must not be empty strings.")
    return inputs


def _encode(vector: tuple[float, ...], encoding_format: str) -> list[float] | str:
    if not all(math.isfinite(x) and abs(x) <= FLOAT32_MAX for x in vector):
        raise Internal("the backend returned an embedding value that is not a finite float32")
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return [float(x) for x in vector]


def render_embeddings(req: EmbeddingsRequest, result: EmbedResult) -> dict[str, Any]:
    """OpenAI's ``list`` of ``embedding`` objects, one per input in order, with usage.

    Raises `Internal` when the backend broke its contract (one finite vector per input), so a client never gets
    a response that silently pairs vectors with the wrong inputs or is not valid JSON.
    """
    if len(result.vectors) != req.request.count:
        raise Internal(f"the backend returned {len(result.vectors)} vectors for {req.request.count} inputs")
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(vector, req.encoding_format)}
            for i, vector in enumerate(result.vectors)
        ],
        "model": req.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
