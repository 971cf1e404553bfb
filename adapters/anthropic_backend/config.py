"""The kind-specific options of an ``anthropic`` backend, validated once into a frozen value.

The daemon consumes ``name``, ``kind``, ``models``, ``priority``, ``active`` and ``queue`` itself and passes the
rest here. The API key is never part of the config: ``api_key_env`` names the environment variable that holds
it, and the key is read at boot (`read_api_key`), so a config file can be committed without a secret in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..backend import BackendConfigError

DEFAULT_API_KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_TIMEOUT_S = 600.0
#: The smallest thinking budget the Messages API accepts.
MIN_THINKING_BUDGET = 1024

OPTION_KEYS = frozenset({"model_map", "api_key_env", "base_url", "max_tokens_default", "timeout_s", "thinking"})


@dataclass(frozen=True, slots=True)
class AnthropicOptions:
    """Validated options. ``thinking`` is None (off), ``"adaptive"``, or a token budget for extended thinking."""

    model_map: Mapping[str, str] = field(default_factory=dict)
    api_key_env: str = DEFAULT_API_KEY_ENV
    base_url: str | None = None
    max_tokens_default: int = DEFAULT_MAX_TOKENS
    timeout_s: float = DEFAULT_TIMEOUT_S
    thinking: str | int | None = None

    def upstream_model(self, model: str) -> str:
        """The upstream model name for a client's model id (ids not in ``model_map`` are sent unchanged)."""
        return self.model_map.get(model, model)


def parse_options(options: Mapping[str, Any]) -> AnthropicOptions:
    """Validate the config table; `BackendConfigError` names the offending key."""
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise BackendConfigError(
            f"anthropic backend: unknown option(s) {', '.join(unknown)} "
            f"(expected: {', '.join(sorted(OPTION_KEYS))})"
        )
    return AnthropicOptions(
        model_map=_model_map(options.get("model_map", {})),
        api_key_env=_api_key_env(options.get("api_key_env", DEFAULT_API_KEY_ENV)),
        base_url=_base_url(options.get("base_url")),
        max_tokens_default=_positive_int(
            "max_tokens_default", options.get("max_tokens_default", DEFAULT_MAX_TOKENS)
        ),
        timeout_s=_positive_number("timeout_s", options.get("timeout_s", DEFAULT_TIMEOUT_S)),
        thinking=_thinking(options.get("thinking")),
    )


def read_api_key(options: AnthropicOptions, environ: Mapping[str, str] | None = None) -> str:
    """The key from the environment; `BackendConfigError` (naming the variable, never a value) when unset."""
    env = os.environ if environ is None else environ
    key = env.get(options.api_key_env, "").strip()
    if not key:
        raise BackendConfigError(
            f"anthropic backend: environment variable {options.api_key_env} is not set or empty; "
            "export the Anthropic API key there (or set api_key_env to the variable that holds it)"
        )
    return key


def _model_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise BackendConfigError("anthropic backend: model_map must be a table of client id -> upstream model")
    result: dict[str, str] = {}
    for client_id, upstream in value.items():
        if not isinstance(client_id, str) or not isinstance(upstream, str) or not upstream:
            raise BackendConfigError(
                f"anthropic backend: model_map.{client_id} must be a non-empty string (the upstream model name)"
            )
        result[client_id] = upstream
    return result


def _api_key_env(value: Any) -> str:
    if not isinstance(value, str) or not value or "=" in value:
        raise BackendConfigError(
            "anthropic backend: api_key_env must be the NAME of an environment variable (the key itself never "
            "goes in the config file)"
        )
    return value


def _base_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BackendConfigError("anthropic backend: base_url must be an http:// or https:// URL")
    return value


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BackendConfigError(f"anthropic backend: {key} must be a positive integer, got {value!r}")
    return value


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BackendConfigError(f"anthropic backend: {key} must be a positive number of seconds, got {value!r}")
    return float(value)


def _thinking(value: Any) -> str | int | None:
    if value is None or value is False or value == "off":
        return None
    if value == "adaptive":
        return "adaptive"
    if isinstance(value, int) and not isinstance(value, bool) and value >= MIN_THINKING_BUDGET:
        return value
    raise BackendConfigError(
        f'anthropic backend: thinking must be "off", "adaptive" or a token budget >= {MIN_THINKING_BUDGET}, '
        f"got {value!r}"
    )
