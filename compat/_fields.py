"""Typed reads of decoded JSON values for the request parsers.

Every reader takes the value and its OpenAI field path (``messages[2].content[0].text``) and either returns the
value with a precise Python type or raises `RequestValidationError` whose ``param`` is that path. The messages
follow OpenAI's wording ("Invalid type for 'temperature': expected a number, but got a string instead.") so a
client sees the same kind of error it would get from the hosted API.

JSON ``null`` for an optional field means "not given", as OpenAI treats it. Booleans are never integers or
numbers, although Python's ``bool`` is a subclass of ``int``.
"""

from __future__ import annotations

from .errors import RequestValidationError

JSONDict = dict[str, object]

MISSING_FIELD = "missing_field"
INVALID_TYPE = "invalid_type"
INVALID_VALUE = "invalid_value"


def kind_of(value: object) -> str:
    """The JSON kind of ``value`` as OpenAI names it in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def field_path(prefix: str, key: str) -> str:
    """``prefix.key`` (or ``key`` at the top level)."""
    return f"{prefix}.{key}" if prefix else key


def item_path(prefix: str, index: int) -> str:
    """``prefix[index]``."""
    return f"{prefix}[{index}]"


def invalid_type(path: str, expected: str, value: object) -> RequestValidationError:
    return RequestValidationError(
        f"Invalid type for '{path}': expected {expected}, but got {kind_of(value)} instead.",
        param=path,
        code=INVALID_TYPE,
    )


def invalid_value(path: str, message: str) -> RequestValidationError:
    return RequestValidationError(f"Invalid value for '{path}': {message}", param=path, code=INVALID_VALUE)


def missing(path: str) -> RequestValidationError:
    return RequestValidationError(f"Missing required parameter: '{path}'.", param=path, code=MISSING_FIELD)


def as_object(value: object, path: str) -> JSONDict:
    """``value`` as a JSON object (keys are always strings in decoded JSON)."""
    if not isinstance(value, dict):
        raise invalid_type(path, "an object", value)
    return value


def as_list(value: object, path: str, *, non_empty: bool = False) -> list[object]:
    if not isinstance(value, list):
        raise invalid_type(path, "an array", value)
    if non_empty and not value:
        raise invalid_value(path, "expected an array with at least 1 element, but got an empty array.")
    return value


def as_str(value: object, path: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise invalid_type(path, "a string", value)
    if non_empty and not value:
        raise invalid_value(path, "expected a non-empty string.")
    return value


def as_bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(path, "a boolean", value)
    return value


def as_int(value: object, path: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) within ``[low, high]`` where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(path, "an integer", value)
    _check_range(value, path, low, high)
    return value


def as_number(value: object, path: str, *, low: float, high: float) -> float:
    """An integer or decimal number (not a bool) within ``[low, high]``; NaN is never in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(path, "a number", value)
    # Compare before converting: float() of a huge integer would overflow.
    _check_range(value, path, low, high)
    return float(value)


def _check_range(value: float, path: str, low: float | None, high: float | None) -> None:
    if low is not None and high is not None:
        if not low <= value <= high:
            raise invalid_value(path, f"expected a value between {low} and {high}.")
    elif low is not None and not value >= low:
        raise invalid_value(path, f"expected a value greater than or equal to {low}.")


def required(obj: JSONDict, key: str, prefix: str = "") -> object:
    """The value of a required key (which may still be ``null``: the caller's type check reports that)."""
    if key not in obj:
        raise missing(field_path(prefix, key))
    return obj[key]


def opt_str(obj: JSONDict, key: str, prefix: str = "") -> str | None:
    value = obj.get(key)
    return None if value is None else as_str(value, field_path(prefix, key))


def opt_bool(obj: JSONDict, key: str, prefix: str = "") -> bool | None:
    value = obj.get(key)
    return None if value is None else as_bool(value, field_path(prefix, key))


def opt_object(obj: JSONDict, key: str, prefix: str = "") -> JSONDict | None:
    value = obj.get(key)
    return None if value is None else as_object(value, field_path(prefix, key))


def opt_int(
    obj: JSONDict, key: str, prefix: str = "", *, low: int | None = None, high: int | None = None
) -> int | None:
    value = obj.get(key)
    return None if value is None else as_int(value, field_path(prefix, key), low=low, high=high)


def opt_number(obj: JSONDict, key: str, prefix: str = "", *, low: float, high: float) -> float | None:
    value = obj.get(key)
    return None if value is None else as_number(value, field_path(prefix, key), low=low, high=high)


def opt_choice(obj: JSONDict, key: str, choices: tuple[str, ...], prefix: str = "") -> str | None:
    """An optional string that must be one of ``choices``."""
    value = opt_str(obj, key, prefix)
    if value is not None and value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise invalid_value(field_path(prefix, key), f"expected one of {expected}, but got {value[:64]!r}.")
    return value
