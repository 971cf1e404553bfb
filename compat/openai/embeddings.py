"""``POST /v1/embeddings``: the request as an `EmbeddingsRequest`, the engine result as OpenAI's ``list`` object.

``input`` is one string or an array of up to `MAX_INPUTS` strings, none empty (as OpenAI requires). Token-id
arrays (``[1, 2, 3]`` or ``[[1, 2], [3]]``) are documented OpenAI inputs that trinfer does not implement: the
token ids of one model mean nothing to another. ``encoding_format: "base64"`` is the little-endian float32 bytes
of each vector, which the OpenAI SDKs decode; ``dimensions`` is only checked here (a backend truncates);
``user`` is ignored.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass
from typing import Any

from adapters.errors import Internal
from adapters.types import EmbedResolved, EmbedResult

from .._fields import as_str, invalid_type, invalid_value, item_path, opt_choice, opt_int, opt_str, required
from ..errors import RequestValidationError, UnsupportedParameter

MAX_INPUTS = 2048
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
    inputs = _parse_inputs(required(body, "input"))
    encoding_format = opt_choice(body, "encoding_format", ENCODING_FORMATS) or "float"
    dimensions = opt_int(body, "dimensions", low=1)
    opt_str(body, "user")
    return EmbeddingsRequest(
        model=model,
        request=EmbedResolved(model=model, inputs=inputs, dimensions=dimensions),
        encoding_format=encoding_format,
    )


def _parse_inputs(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [value]
        paths = ["input"]
    elif isinstance(value, list):
        if not value:
            raise invalid_value("input", "expected at least one input, but got an empty array.")
        if len(value) > MAX_INPUTS:
            raise invalid_value("input", f"expected at most {MAX_INPUTS} inputs.")
        first = value[0]
        if isinstance(first, list) or (isinstance(first, int) and not isinstance(first, bool)):
            raise UnsupportedParameter("Token-id inputs are not supported; send strings.", param="input")
        items = value
        paths = [item_path("input", i) for i in range(len(value))]
    else:
        raise invalid_type("input", "a string or an array of strings", value)
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
    if len(result.vectors) != len(req.request.inputs):
        raise Internal(f"the backend returned {len(result.vectors)} vectors for {len(req.request.inputs)} inputs")
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(vector, req.encoding_format)}
            for i, vector in enumerate(result.vectors)
        ],
        "model": req.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
