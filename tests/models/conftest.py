"""The real SmolLM2 model for these tests, found (or skipped for) exactly as the llamacpp tests do."""

from __future__ import annotations

from ..llamacpp.conftest import chat_model_path

__all__ = ["chat_model_path"]
