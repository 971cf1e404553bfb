"""``/v1/models`` bodies parse as the openai SDK's `Model` and list types."""

from __future__ import annotations

from openai.pagination import SyncPage
from openai.types import Model

from compat.openai.models import model_list, model_object


def test_model_object_exact_form_and_sdk_shape() -> None:
    obj = model_object("llama-3.2-1b", 1_700_000_000, "trinfer")
    assert obj == {"id": "llama-3.2-1b", "object": "model", "created": 1_700_000_000, "owned_by": "trinfer"}
    assert Model.model_validate(obj) == Model(
        id="llama-3.2-1b", object="model", created=1_700_000_000, owned_by="trinfer"
    )


def test_model_list_keeps_order_and_parses_as_a_page() -> None:
    objects = [model_object("b", 2, "trinfer"), model_object("a", 1, "anthropic")]
    listed = model_list(objects)
    assert listed == {"object": "list", "data": objects}
    page = SyncPage[Model].model_validate(listed)
    assert [(m.id, m.created, m.owned_by) for m in page.data] == [("b", 2, "trinfer"), ("a", 1, "anthropic")]


def test_empty_model_list() -> None:
    assert model_list([]) == {"object": "list", "data": []}
