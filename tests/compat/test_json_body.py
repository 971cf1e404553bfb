"""Request body decoding: valid JSON comes back as plain values; everything malformed is ``invalid_json``."""

from __future__ import annotations

import json

import pytest

from compat.errors import RequestValidationError
from compat.json_body import MAX_DEPTH, loads_text, parse_json


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (
            b'{"model": "m", "n": 1, "t": 0.5, "ok": true, "x": null}',
            {"model": "m", "n": 1, "t": 0.5, "ok": True, "x": None},
        ),
        (b"[]", []),
        (b'"text"', "text"),
        ('{"emoji": "\\ud83d\\ude00", "raw": "é"}'.encode(), {"emoji": "\U0001f600", "raw": "é"}),
        (b" \r\n\t{}\n", {}),
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)),
    ],
    ids=["object", "array", "string", "unicode", "whitespace", "max depth"],
)
def test_valid_json_decodes(raw: bytes, value: object) -> None:
    assert parse_json(raw) == value
    assert parse_json(raw, interruptible=True) == value


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "Expecting value"),
        (b"{", "Expecting property name"),
        (b'{"a": 1} x', "Extra data"),
        (b"{'a': 1}", "Expecting property name"),
        (b'\xef\xbb\xbf{"a": 1}', "BOM"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b"NaN", "NaN is not valid JSON"),
        (b'{"t": Infinity}', "Infinity is not valid JSON"),
        (b"[-Infinity]", "-Infinity is not valid JSON"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested more than 64 levels"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested more than 64 levels"),
        (b"[" * 200_000, "nested more than 64 levels"),
        (b'{"a": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "unpaired UTF-16 surrogate"),
        ('{"a": "\u00e9\\ud800"}'.encode(), "unpaired UTF-16 surrogate"),
        (b"1" * 5000, "Exceeds the limit"),
        (b'{"const": 1e999}', "the number 1e999 is too large"),
        (b"[-1.5e400]", "the number -1.5e400 is too large"),
        (b"[" + b"9" * 400 + b".0]", "too large"),
    ],
    ids=[
        "empty",
        "truncated",
        "trailing garbage",
        "single quotes",
        "byte order mark",
        "not utf-8",
        "NaN",
        "Infinity",
        "-Infinity",
        "too deep arrays",
        "too deep objects",
        "recursion bomb",
        "lone surrogate value",
        "lone surrogate key",
        "lone surrogate after non-ascii",
        "huge integer",
        "exponent overflow",
        "negative exponent overflow",
        "long decimal overflow",
    ],
)
@pytest.mark.parametrize("interruptible", [False, True], ids=["one C call", "interruptible"])
def test_malformed_bodies_are_invalid_json(raw: bytes, needle: str, interruptible: bool) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_json(raw, interruptible=interruptible)
    assert (info.value.code, info.value.param, info.value.http_status) == ("invalid_json", None, 400)
    assert needle in info.value.message


def test_errors_inside_a_field_name_that_field() -> None:
    with pytest.raises(RequestValidationError) as info:
        loads_text("[1,", "messages[0].tool_calls[0].function.arguments")
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"
    assert info.value.message.startswith("We could not parse 'messages[0].tool_calls[0].function.arguments': ")
