"""The kind-specific options of an ``openai`` backend (DESIGN.md section 9), validated once into a frozen value.

The daemon consumes ``name``, ``kind``, ``models``, ``priority``, ``active`` and ``queue`` itself and passes the
rest here. The API key comes either inline (``api_key``) or, better, from the environment variable named by
``api_key_env``; neither means no ``Authorization`` header (a llama-server or vLLM on a private network often
has none). The key is read at boot (`read_api_key`) and never appears in a message, a log line or the status.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..backend import BackendConfigError

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 300.0
DEFAULT_HEALTH_INTERVAL_S = 5.0

OPTION_KEYS = frozenset(
    {
        "base_urls",
        "api_key",
        "api_key_env",
        "upstream_model",
        "embed",
        "connect_timeout_s",
        "read_timeout_s",
        "health_interval_s",
    }
)


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """Validated options. ``base_urls`` end without a slash (``http://host:8000/v1``)."""

    base_urls: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    upstream_model: str | None = None
    embed: bool = False
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S

    def model_for(self, model: str) -> str:
        """The model name sent upstream for the id a client asked for."""
        return self.upstream_model or model

    def auth_source(self) -> str:
        """Where the key comes from, for the status page: never the key itself."""
        if self.api_key_env is not None:
            return f"env {self.api_key_env}"
        return "inline api_key" if self.api_key is not None else "none"


def parse_options(options: Mapping[str, Any]) -> UpstreamOptions:
    """Validate the config table; `BackendConfigError` names the offending key (never a key's value)."""
    unknown = sorted(set(options) - OPTION_KEYS)
    if unknown:
        raise BackendConfigError(
            f"openai backend: unknown option(s) {', '.join(unknown)} (expected: {', '.join(sorted(OPTION_KEYS))})"
        )
    if "api_key" in options and "api_key_env" in options:
        raise BackendConfigError("openai backend: give api_key or api_key_env, not both")
    return UpstreamOptions(
        base_urls=_base_urls(options.get("base_urls")),
        api_key=_api_key(options.get("api_key")),
        api_key_env=_api_key_env(options.get("api_key_env")),
        upstream_model=_upstream_model(options.get("upstream_model")),
        embed=_bool("embed", options.get("embed", False)),
        connect_timeout_s=_seconds(
            "connect_timeout_s", options.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S)
        ),
        read_timeout_s=_seconds("read_timeout_s", options.get("read_timeout_s", DEFAULT_READ_TIMEOUT_S)),
        health_interval_s=_seconds(
            "health_interval_s", options.get("health_interval_s", DEFAULT_HEALTH_INTERVAL_S)
        ),
    )


def read_api_key(options: UpstreamOptions, environ: Mapping[str, str] | None = None) -> str | None:
    """The key to send as ``Bearer``, or None; `BackendConfigError` (naming the variable) when it is unset."""
    if options.api_key_env is None:
        return options.api_key
    env = os.environ if environ is None else environ
    key = env.get(options.api_key_env, "").strip()
    if not key:
        raise BackendConfigError(
            f"openai backend: environment variable {options.api_key_env} (api_key_env) is not set or empty"
        )
    return key


def _base_urls(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise BackendConfigError(
            'openai backend: base_urls must be a non-empty list of URLs, e.g. ["http://10.0.0.5:8000/v1"]'
        )
    urls: list[str] = []
    for index, item in enumerate(value):
        url = item.rstrip("/") if isinstance(item, str) else None
        parts = urlsplit(url) if url is not None else None
        if url is None or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendConfigError(f"openai backend: base_urls[{index}] must be an http:// or https:// URL")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise BackendConfigError(
                f"openai backend: base_urls[{index}] must not carry a query, fragment or credentials "
                "(put the key in api_key_env)"
            )
        if url in urls:
            raise BackendConfigError(f"openai backend: base_urls[{index}] is listed twice")
        urls.append(url)
    return tuple(urls)


def _api_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BackendConfigError("openai backend: api_key must be a non-empty string")
    return value.strip()


def _api_key_env(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "=" in value or value != value.strip():
        raise BackendConfigError(
            "openai backend: api_key_env must be the NAME of an environment variable holding the key"
        )
    return value


def _upstream_model(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BackendConfigError("openai backend: upstream_model must be a non-empty string")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BackendConfigError(f"openai backend: {key} must be true or false, got {value!r}")
    return value


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise BackendConfigError(f"openai backend: {key} must be a positive number of seconds, got {value!r}")
    return float(value)
