"""Fixtures for the llamacpp tests: the real SmolLM2 model, booted backends, and the skip-or-fail rule.

When llama-cpp-python or the model package is missing, the tests that need them are skipped with the reason -
unless ``TRINFER_REQUIRE_LLAMA=1`` (CI sets it), in which case they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from adapters.llamacpp import LlamaCppBackend
from adapters.llamacpp.defaults import INSTALL_CHAT_MODEL, INSTALL_LLAMA, find_chat_model

REQUIRED = os.environ.get("TRINFER_REQUIRE_LLAMA") == "1"


def missing_reason() -> str | None:
    """Why the real-model tests cannot run here, or ``None`` when they can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed ({INSTALL_LLAMA})"
    if find_chat_model() is None:
        return f"the SmolLM2 chat model is not installed ({INSTALL_CHAT_MODEL})"
    return None


def require_llama() -> None:
    """Skip the calling test (or fail it, under TRINFER_REQUIRE_LLAMA=1) when the real model cannot run."""
    reason = missing_reason()
    if reason is None:
        return
    if REQUIRED:
        pytest.fail(f"TRINFER_REQUIRE_LLAMA=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chat_model_path() -> Path:
    require_llama()
    path = find_chat_model()
    assert path is not None
    return path


@pytest.fixture(scope="session")
def template_free_model(chat_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the SmolLM2 GGUF without ``tokenizer.chat_template`` (written once per session, ~2 s)."""
    out = tmp_path_factory.mktemp("no-template") / "smollm2-no-template.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--remove-metadata", "tokenizer.chat_template",
         "--force", str(chat_model_path), str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


#: A ChatML template that, like Mistral's, insists on alternating user/assistant turns.
STRICT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.fixture(scope="session")
def strict_template_model(chat_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the SmolLM2 GGUF whose chat template refuses non-alternating roles (written once, ~2 s)."""
    out = tmp_path_factory.mktemp("strict-template") / "smollm2-strict.gguf"
    subprocess.run(
        [sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--chat-template", STRICT_TEMPLATE,
         "--force", str(chat_model_path), str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


async def boot_backend(model_path: Path, **options: Any) -> LlamaCppBackend:
    backend = LlamaCppBackend.from_options({"model_path": str(model_path), **options})
    await backend.boot()
    return backend


async def booted(model_path: Path, options: Mapping[str, Any]) -> AsyncIterator[LlamaCppBackend]:
    backend = await boot_backend(model_path, **options)
    try:
        yield backend
    finally:
        await backend.stop(10)


@pytest.fixture
async def backend(chat_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    """The chat backend with default options, booted for one test (a load takes ~0.15 s)."""
    async for booted_backend in booted(chat_model_path, {}):
        yield booted_backend


@pytest.fixture
async def small_context_backend(chat_model_path: Path) -> AsyncIterator[LlamaCppBackend]:
    """The chat backend with a 256-token context (llama.cpp's smallest), for context-length tests."""
    async for booted_backend in booted(chat_model_path, {"n_ctx": 256}):
        yield booted_backend
