"""`compat.fates.FieldFates`: the one check of top-level field fates every dialect's parser applies."""

from __future__ import annotations

import pytest

from compat.errors import RequestValidationError, UnsupportedParameter
from compat.fates import FieldFates

FATES = FieldFates(
    frozenset({"model"}),
    {"legacy": "'legacy' is not supported; use 'model'."},
    {"hint": "string", "flags": "array"},
)


def test_a_body_with_mapped_ignored_and_unknown_fields_passes_as_it_is() -> None:
    body: dict[str, object] = {"model": "m", "hint": "h", "flags": [1], "legacy": None, "x_extension": 3}
    assert FATES.check(body) is body


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"legacy": False}, "legacy", "unsupported_parameter"),
        ({"hint": 1}, "hint", "invalid_type"),
        ({"flags": {}}, "flags", "invalid_type"),
    ],
)
def test_an_unsupported_field_set_or_an_ignored_one_of_the_wrong_kind_is_refused(
    body: dict[str, object], param: str, code: str
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        FATES.check(body)
    assert (caught.value.param, caught.value.code) == (param, code)
    assert isinstance(caught.value, UnsupportedParameter) == (code == "unsupported_parameter")


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="must be a JSON object"):
        FATES.check(["model"])


def test_rows_and_handled_are_the_docs_table() -> None:
    assert FATES.rows() == {"model": "mapped", "legacy": "unsupported", "hint": "ignored", "flags": "ignored"}
    assert FATES.handled == {"model", "legacy", "hint", "flags"}


def test_an_ignored_field_of_an_unknown_kind_is_a_bug_caught_when_the_table_is_built() -> None:
    with pytest.raises(ValueError, match="unknown JSON kind 'number'"):
        FieldFates(frozenset(), {}, {"temperature": "number"})
