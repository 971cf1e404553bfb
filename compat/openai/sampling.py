"""The sampling fields of a chat request as `SamplingParams`, with OpenAI's types and ranges.

``max_completion_tokens`` is the newer name of ``max_tokens``: either may be given, both only with the same
value. ``top_k`` and ``min_p`` are not OpenAI fields but common extensions (vLLM, llama.cpp's server) that
clients send through ``extra_body``; they are mapped rather than ignored.
"""

from __future__ import annotations

import re

from adapters.types import SamplingParams

from .._fields import (
    JSONDict,
    as_number,
    as_object,
    as_str,
    field_path,
    invalid_type,
    invalid_value,
    item_path,
    opt_bool,
    opt_int,
    opt_number,
)

MAX_STOP_SEQUENCES = 4
MAX_CHOICES = 128  # OpenAI's bound on ``n``
MAX_TOP_LOGPROBS = 20
_INT64 = 2**63
_TOKEN_ID = re.compile(r"[0-9]{1,10}")


def parse_sampling(body: JSONDict) -> SamplingParams:
    """Every sampling field of the request body (``null`` = the backend's default)."""
    return SamplingParams(
        temperature=opt_number(body, "temperature", low=0, high=2),
        top_p=opt_number(body, "top_p", low=0, high=1),
        top_k=opt_int(body, "top_k", low=0),
        min_p=opt_number(body, "min_p", low=0, high=1),
        max_tokens=_max_tokens(body),
        stop=_stop(body.get("stop")),
        seed=opt_int(body, "seed", low=-_INT64, high=_INT64 - 1),
        presence_penalty=opt_number(body, "presence_penalty", low=-2, high=2),
        frequency_penalty=opt_number(body, "frequency_penalty", low=-2, high=2),
        logit_bias=_logit_bias(body.get("logit_bias")),
        n=opt_int(body, "n", low=1, high=MAX_CHOICES) or 1,
        top_logprobs=_top_logprobs(body),
    )


def _top_logprobs(body: JSONDict) -> int | None:
    """``None`` without ``logprobs: true``, else ``top_logprobs`` (0-20, default 0). Asking for alternatives
    (``top_logprobs > 0``) without ``logprobs`` is refused, as OpenAI does, rather than dropped."""
    top = opt_int(body, "top_logprobs", low=0, high=MAX_TOP_LOGPROBS)
    if opt_bool(body, "logprobs"):
        return top or 0
    if top:
        raise invalid_value("top_logprobs", "'logprobs' must be true when 'top_logprobs' is set.")
    return None


def _max_tokens(body: JSONDict) -> int | None:
    legacy = opt_int(body, "max_tokens", low=1)
    current = opt_int(body, "max_completion_tokens", low=1)
    if legacy is not None and current is not None and legacy != current:
        raise invalid_value(
            "max_completion_tokens",
            "'max_tokens' and 'max_completion_tokens' are the same setting; give one of them.",
        )
    return current if current is not None else legacy


def _stop(value: object, path: str = "stop") -> tuple[str, ...]:
    """``stop``: one string or an array of up to four; empty strings would stop at once and are refused."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = [value]
        paths = [path]
    elif isinstance(value, list):
        if len(value) > MAX_STOP_SEQUENCES:
            raise invalid_value(path, f"expected at most {MAX_STOP_SEQUENCES} stop sequences.")
        items = value
        paths = [item_path(path, i) for i in range(len(value))]
    else:
        raise invalid_type(path, "a string or an array of strings", value)
    stops = tuple(as_str(item, item_path_) for item, item_path_ in zip(items, paths, strict=True))
    for stop, stop_path in zip(stops, paths, strict=True):
        if not stop:
            raise invalid_value(stop_path, "stop sequences must not be empty.")
    return stops


def _logit_bias(value: object, path: str = "logit_bias") -> tuple[tuple[int, float], ...]:
    """``{"<token id>": bias}`` with bias in [-100, 100], as (token id, bias) pairs in the order given."""
    if value is None:
        return ()
    biases: list[tuple[int, float]] = []
    for key, bias in as_object(value, path).items():
        key_path = field_path(path, key)
        if not _TOKEN_ID.fullmatch(key):
            raise invalid_value(key_path[:128], "keys must be token ids (non-negative integers).")
        biases.append((int(key), as_number(bias, key_path, low=-100, high=100)))
    return tuple(biases)
