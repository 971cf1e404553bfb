"""``GET /v1/models`` and ``GET /v1/models/{id}`` bodies, in OpenAI's shape."""

from __future__ import annotations

from typing import Any


def model_object(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    """One ``model`` object (the body of ``GET /v1/models/{id}``)."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def model_list(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``list`` object of ``GET /v1/models``, holding the given model objects in order."""
    return {"object": "list", "data": list(objects)}
