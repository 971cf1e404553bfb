"""docs/api-compat.md and the Messages parser agree: every field the anthropic SDK can send (plus the sampling
fields the API takes) has a row, and each row's state is the one the code applies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_type_hints

from anthropic.types import message_count_tokens_params, message_create_params

from compat.anthropic.request import FATES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-compat.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (mapped|unsupported|ignored) \|", re.MULTILINE)
#: API fields this SDK version has no keyword for (clients send them through ``extra_body``; the beta
#: namespace has ``mcp_servers`` and ``context_management``).
NOT_IN_SDK = {"temperature", "top_p", "top_k", "output_format", "mcp_servers", "context_management"}


def messages_rows() -> dict[str, str]:
    text = DOC.read_text()
    section = text[text.index("### Request fields") : text.index("Content blocks:")]
    return dict(ROW.findall(section))


def test_every_sdk_messages_field_is_handled_by_the_parser() -> None:
    sdk = set(get_type_hints(message_create_params.MessageCreateParamsStreaming))
    sdk |= set(get_type_hints(message_count_tokens_params.MessageCountTokensParams))
    handled = FATES.handled
    assert sdk - handled == set()
    assert handled - sdk == NOT_IN_SDK


def test_every_messages_field_has_a_doc_row_with_the_state_the_code_applies() -> None:
    assert messages_rows() == FATES.rows()
