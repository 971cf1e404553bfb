"""API-key authentication: ``Authorization: Bearer <key>`` (or ``x-api-key: <key>`` on Anthropic routes),
compared in constant time.

Keys are compared as SHA-256 digests with `hmac.compare_digest`, against every configured key without an early
exit, so neither the position of the first wrong byte nor which key matched shows in the timing. No key and no
header value is ever put in an error message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from compat.errors import AuthenticationError

from .playground import PUBLIC_PATHS as PLAYGROUND_PATHS

#: Routes that never need a key: liveness and readiness probes, and the playground page (it asks for the key).
PUBLIC_PATHS = frozenset({"/health", "/ready", *PLAYGROUND_PATHS})


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class ApiKeys:
    """The configured keys. With none configured, every request is allowed."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def matches(self, key: str) -> bool:
        """True if ``key`` is one of the configured keys (constant time in the key's content)."""
        candidate = _digest(key)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(candidate, digest)
        return found

    def check_header(self, authorization: str | None, *, x_api_key: str | None = None) -> None:
        """Raise `AuthenticationError` unless ``authorization`` is ``Bearer <a configured key>`` or (Anthropic
        routes, where clients send it so) ``x_api_key`` is a configured key."""
        if not self.enabled:
            return
        if x_api_key is not None and self.matches(x_api_key.strip()):
            return
        if authorization is None:
            if x_api_key is not None:
                raise AuthenticationError("Incorrect API key provided.")
            raise AuthenticationError("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not self.matches(key.strip()):
            raise AuthenticationError("Incorrect API key provided.")
