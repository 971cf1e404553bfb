"""Decoding request bodies: bytes in, plain JSON values out, or `RequestValidationError` code ``invalid_json``.

Stricter than ``json.loads`` in the ways that protect what comes after it: the body must be UTF-8, the
non-standard literals ``NaN``/``Infinity``/``-Infinity`` are refused, and so is any number too large for a float
(``1e999`` would decode to infinity, which no JSON encoder may write back: a schema ``const`` or an argument
holding it would make the answer invalid JSON), nesting deeper than `MAX_DEPTH` is
refused (the parsers and backends never have to think about recursion), and strings may not hold lone UTF-16
surrogates (``"\\ud800"`` decodes to a Python string that cannot be encoded back to UTF-8, which would fail
much later inside a tokenizer or an upstream client).
"""

from __future__ import annotations

import json
import math
import re

from .errors import RequestValidationError

#: Deepest allowed nesting of arrays and objects (the top-level value is depth 1).
MAX_DEPTH = 64

INVALID_JSON = "invalid_json"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NonFiniteLiteral(ValueError):
    pass


def _reject_constant(name: str) -> object:
    raise _NonFiniteLiteral(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteLiteral(f"the number {text[:32]} is too large (it overflows to infinity)")
    return value


def _invalid(message: str, param: str | None) -> RequestValidationError:
    return RequestValidationError(message, param=param, code=INVALID_JSON)


def _object(value: dict[str, object]) -> dict[str, object]:
    return value


def parse_json(raw: bytes, *, interruptible: bool = False) -> object:
    """Decode a request body. Raises `RequestValidationError` (code ``invalid_json``) on anything malformed.

    ``interruptible`` (for a large body decoded in a worker thread): every JSON object passes through a Python
    function, which gives other threads the GIL between objects. ``json.loads`` is otherwise one C call that
    holds the GIL for the whole document: ~0.15 s for 8 MiB of short messages, during which no other thread -
    the event loop included - runs. It costs ~10% more decoding time, so small bodies decode without it.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid("We could not parse the JSON body of your request: it is not valid UTF-8.", None) from exc
    return loads_text(text, interruptible=interruptible)


def loads_text(text: str, param: str | None = None, *, interruptible: bool = False) -> object:
    """Decode JSON text with the same rules as `parse_json`; errors name ``param`` (e.g. tool call arguments)."""
    where = f"'{param}'" if param else "the JSON body of your request"
    hook = _object if interruptible else None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, object_hook=hook)
    except RecursionError as exc:
        raise _invalid(
            f"We could not parse {where}: it is nested more than {MAX_DEPTH} levels deep.", param
        ) from exc
    except ValueError as exc:
        raise _invalid(f"We could not parse {where}: {exc}.", param) from exc
    _check_tree(value, where, param)
    return value


def _check_tree(value: object, where: str, param: str | None) -> None:
    """Refuse nesting deeper than `MAX_DEPTH` and lone surrogates, walking iteratively (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            # isascii() is a flag lookup; the regex scans a 7.9 MiB string for ~50 ms, holding the GIL.
            if not item.isascii() and _LONE_SURROGATE.search(item):
                raise _invalid(f"We could not parse {where}: a string holds an unpaired UTF-16 surrogate.", param)
        elif isinstance(item, list | dict):
            if depth > MAX_DEPTH:
                raise _invalid(
                    f"We could not parse {where}: it is nested more than {MAX_DEPTH} levels deep.", param
                )
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
