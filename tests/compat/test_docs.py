"""docs/api-compat.md and the parser agree: every field the openai SDK can send has a row, and each row's state
(mapped / unsupported / ignored) is the one the code applies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_type_hints

import pytest
from openai.types import embedding_create_params
from openai.types.chat import completion_create_params

from compat.openai import chat_request, completions, responses_request

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-compat.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (mapped|unsupported|ignored) \|", re.MULTILINE)
EXTENSIONS = {"top_k", "min_p"}


def chat_rows() -> dict[str, str]:
    text = DOC.read_text()
    section = text[text.index("## `POST /v1/chat/completions`") : text.index("### Messages")]
    return dict(ROW.findall(section))


def sdk_chat_fields() -> set[str]:
    return set(get_type_hints(completion_create_params.CompletionCreateParamsStreaming))


def test_every_sdk_chat_field_is_handled_by_the_parser() -> None:
    handled = chat_request.FATES.handled
    assert sdk_chat_fields() - handled == set()
    assert handled - sdk_chat_fields() == EXTENSIONS


def test_every_chat_field_has_a_doc_row_with_the_state_the_code_applies() -> None:
    assert chat_rows() == chat_request.FATES.rows()


@pytest.mark.parametrize("name", sorted(get_type_hints(embedding_create_params.EmbeddingCreateParams)))
def test_every_sdk_embeddings_field_has_a_doc_row(name: str) -> None:
    text = DOC.read_text()
    section = text[text.index("## `POST /v1/embeddings`") : text.index("## `GET /v1/models`")]
    assert name in dict(ROW.findall(section))


def section_rows(start: str, end: str) -> dict[str, str]:
    text = DOC.read_text()
    return dict(ROW.findall(text[text.index(start) : text.index(end)]))


def test_every_responses_field_has_a_doc_row_with_the_state_the_code_applies() -> None:
    assert section_rows("## `POST /v1/responses`", "### Input items") == responses_request.FATES.rows()


def test_every_completions_field_has_a_doc_row_with_the_state_the_code_applies() -> None:
    assert section_rows("## `POST /v1/completions`", "## `POST /v1/embeddings`") == completions.FATES.rows()
