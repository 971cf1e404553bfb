"""Backend kinds by config name. Imports are lazy so that a config using only the mock needs no llama_cpp."""

from __future__ import annotations

import importlib

from .backend import Backend, BackendConfigError

_KINDS: dict[str, tuple[str, str]] = {
    "mock": ("adapters.mock", "MockBackend"),
    "llamacpp": ("adapters.llamacpp", "LlamaCppBackend"),
    "anthropic": ("adapters.anthropic_backend", "AnthropicBackend"),
    "openai": ("adapters.openai_upstream", "OpenAIUpstreamBackend"),
}

KINDS: tuple[str, ...] = tuple(_KINDS)


def backend_class(kind: str) -> type[Backend]:
    """The class implementing ``kind``; `BackendConfigError` for an unknown or uninstallable kind."""
    try:
        module_name, attr = _KINDS[kind]
    except KeyError:
        raise BackendConfigError(f"unknown backend kind {kind!r} (expected one of {', '.join(KINDS)})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendConfigError(f"backend kind {kind!r} is not available: {exc}") from exc
    cls: type[Backend] = getattr(module, attr)
    return cls
