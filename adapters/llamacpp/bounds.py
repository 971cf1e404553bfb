"""GBNF for numbers within JSON-schema bounds: ``minimum``, ``maximum`` and ``exclusiveMinimum``/``Maximum``.

llama-cpp-python's schema converter ignores numeric bounds, so pydantic's ``Field(ge=1, le=5)`` would let the
model write 7. This module writes the grammar itself, as plain decimal text that JSON accepts (no leading
zeros, no exponent):

- ``integer``: exactly the integers within the bounds (fractional bounds round inward: ``minimum: 1.5`` is 2).
- ``number``: every decimal with up to 15 fraction digits within the bounds, when the bounds are whole numbers
  (``0 < x <= 1`` allows ``0.5`` and ``1`` but not ``0`` or ``1.5``). A fractional bound is rounded inward to a
  whole number (``minimum: 0.5`` enforces ``x >= 1``): every answer still validates, but the grammar is
  stricter than the schema there, and docs/llamacpp.md says so. Bounds whose rounding leaves nothing are a 400.

Theory of operation: a set of non-negative integers ``[low, high]`` is split by digit count, and each same-length
span ``[a, b]`` by its leading digit: ``a``'s first digit followed by the span from ``a``'s tail to all nines,
the digits strictly between followed by any digits, and ``b``'s first digit followed by the span from zeros to
``b``'s tail (the classic regular-expression construction). Negative values are a ``-`` and a magnitude span.
An unbounded side stops at `MAX_DIGITS` digits, as the converter's own integer rule does, so a huge bound on
the open side simply is that side's cap; a bound with more than `MAX_BOUND_DIGITS` digits on the other is a 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Digits of an integer part when a side is unbounded (the converter's ``integral-part`` allows 16).
MAX_DIGITS = 16
#: Longest bound this module builds digit spans for.
MAX_BOUND_DIGITS = 20
#: Fraction digits a bounded ``number`` may have.
FRACTION_DIGITS = 15

BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

_FRACTION = f'("." [0-9]{{1,{FRACTION_DIGITS}}})?'
_NONZERO_FRACTION = f'"." [0-9]{{0,{FRACTION_DIGITS - 1}}} [1-9]'


class EmptyRange(ValueError):
    """No value of the node's type satisfies its bounds (as this grammar enforces them); the message says why."""


def _digits(low: int, high: int) -> list[str]:
    """Sequences matching the decimal strings of the integers in ``[low, high]`` (same length, low <= high)."""
    return _digits_str(str(low), str(high))


def _digits_str(a: str, b: str) -> list[str]:
    """Sequences matching the digit strings from ``a`` to ``b`` (same length; tails may start with zeros)."""
    if a == b:
        return [f'"{a}"']
    if a[0] == b[0]:
        return [f'"{a[0]}" {tail}' for tail in _digits_str(a[1:], b[1:])]
    rest = len(a) - 1
    any_rest = f" [0-9]{{{rest}}}" if rest else ""
    low_full, high_full = a[1:] == "0" * rest, b[1:] == "9" * rest
    first = a[0] if low_full else chr(ord(a[0]) + 1)
    last = b[0] if high_full else chr(ord(b[0]) - 1)
    spans = [] if low_full else [f'"{a[0]}" {tail}' for tail in _digits_str(a[1:], "9" * rest)]
    if first <= last:
        spans.append(f"[{first}-{last}]{any_rest}")
    if not high_full:
        spans += [f'"{b[0]}" {tail}' for tail in _digits_str("0" * rest, b[1:])]
    return spans


def integer_spans(low: int, high: int | None) -> list[str]:
    """Alternatives matching exactly the non-negative integers in ``[low, high]`` (``None``: up to MAX_DIGITS)."""
    if high is not None and high >= 10**MAX_DIGITS:
        high = None
    if len(str(low)) > MAX_BOUND_DIGITS:
        raise EmptyRange(f"bounds with more than {MAX_BOUND_DIGITS} digits cannot be enforced")
    length = len(str(low))
    if high is None:  # low's length up from low, then every longer integer up to MAX_DIGITS digits
        longer = [f"[1-9] [0-9]{{{length},{MAX_DIGITS - 1}}}"] if length < MAX_DIGITS else []
        return _digits(low, 10**length - 1) + longer
    spans: list[str] = []
    for size in range(length, len(str(high)) + 1):
        spans += _digits(max(low, 10 ** (size - 1) if size > 1 else 0), min(high, 10**size - 1))
    return spans


def _group(spans: list[str]) -> str:
    return spans[0] if len(spans) == 1 else "(" + " | ".join(spans) + ")"


def _lower(node: Mapping[str, Any]) -> tuple[float, bool] | None:
    """The tightest lower bound as (value, exclusive), or ``None``."""
    bounds = [(node["minimum"], False)] if "minimum" in node else []
    bounds += [(node["exclusiveMinimum"], True)] if "exclusiveMinimum" in node else []
    return max(bounds) if bounds else None


def _upper(node: Mapping[str, Any]) -> tuple[float, bool] | None:
    """The tightest upper bound as (value, exclusive), or ``None``."""
    bounds = [(node["maximum"], False)] if "maximum" in node else []
    bounds += [(node["exclusiveMaximum"], True)] if "exclusiveMaximum" in node else []
    return min(bounds, key=lambda bound: (bound[0], not bound[1])) if bounds else None


def integer_rule(node: Mapping[str, Any]) -> str:
    """The GBNF body (without trailing space) of an ``integer`` node with bounds; `EmptyRange` if none fits."""
    lower, upper = _lower(node), _upper(node)
    low = None if lower is None else (math.floor(lower[0]) + 1 if lower[1] else math.ceil(lower[0]))
    high = None if upper is None else (math.ceil(upper[0]) - 1 if upper[1] else math.floor(upper[0]))
    if low is not None and high is not None and low > high:
        raise EmptyRange("no integer lies within its minimum and maximum")
    alternatives: list[str] = []
    if low is None or low < 0:
        smallest = 1 if high is None or high >= 0 else -high
        alternatives.append('"-" ' + _group(integer_spans(smallest, None if low is None else -low)))
    if high is None or high >= 0:
        alternatives += integer_spans(max(low or 0, 0), high)
    return _group(alternatives)


def _whole(bound: tuple[float, bool] | None, *, up: bool) -> tuple[int, bool] | None:
    """A bound rounded inward to a whole number, with its exclusiveness (kept only when already whole)."""
    if bound is None:
        return None
    value, exclusive = bound
    if value == int(value):
        return int(value), exclusive
    return (math.ceil(value) if up else math.floor(value)), False


def _magnitudes(low: int, low_open: bool, high: int | None, high_open: bool) -> list[str]:
    """Alternatives for decimals whose value lies between ``low`` and ``high`` (non-negative, ``low < high``)."""
    spans = [f'"{low}" ' + (_NONZERO_FRACTION if low_open else _FRACTION)]
    if high is None:
        return [*spans, _group(integer_spans(low + 1, None)) + " " + _FRACTION]
    if low + 1 <= high - 1:
        spans.append(_group(integer_spans(low + 1, high - 1)) + " " + _FRACTION)
    if not high_open:
        spans.append(f'"{high}"')
    return spans


def _empty(low: int | None, low_open: bool, high: int | None, high_open: bool) -> bool:
    if low is None or high is None:
        return False
    return low > high or (low == high and (low_open or high_open))


def number_rule(node: Mapping[str, Any]) -> str:
    """The GBNF body (without trailing space) of a ``number`` node with bounds; `EmptyRange` if none fits."""
    lower, upper = _whole(_lower(node), up=True), _whole(_upper(node), up=False)
    low, low_open = lower if lower is not None and lower[0] > -(10**MAX_DIGITS) else (None, False)
    high, high_open = upper if upper is not None and upper[0] < 10**MAX_DIGITS else (None, False)
    if _empty(low, low_open, high, high_open):
        raise EmptyRange("no number lies within its minimum and maximum once they are rounded to whole numbers")
    for bound in (low, high):
        if bound is not None and len(str(abs(bound))) > MAX_BOUND_DIGITS:
            raise EmptyRange(f"bounds with more than {MAX_BOUND_DIGITS} digits cannot be enforced")
    alternatives: list[str] = []
    # Values >= 0: magnitudes from max(low, 0) to high.
    start, start_open = (low, low_open) if low is not None and low >= 0 else (0, False)
    if not _empty(start, start_open, high, high_open):
        alternatives += [f'"{start}"'] if start == high else _magnitudes(start, start_open, high, high_open)
    # Values < 0: a "-" and magnitudes above 0 (or above -high), up to -low.
    if low is None or low < 0:
        floor_, floor_open = (-high, high_open) if high is not None and high < 0 else (0, True)
        top = None if low is None else -low
        if top is None:
            negative = _magnitudes(floor_, floor_open, None, False)
        elif floor_ == top:
            negative = [f'"{top}"']
        else:
            negative = _magnitudes(floor_, floor_open, top, low_open)
        alternatives.append('"-" ' + _group(negative))
    return _group(alternatives)
