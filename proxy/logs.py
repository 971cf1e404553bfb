"""Logging: stdlib ``logging`` to stderr, one line per request, with secrets redacted on the way out.

The redaction is a formatter, applied to the fully formatted line (message, arguments and traceback), so that
nothing logged anywhere in the process - by trinfer, hypercorn or a backend library - can print a configured
API key or the value of an ``Authorization`` header / bearer token.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

LOGGER_NAME = "trinfer"
REDACTED = "[redacted]"

_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20)[^\s'\",;]+")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*\(?\s*b?['\"]?)[^'\"\s,)]+(\s+[^'\"\s,)]+)?")
_KEY_SUBPROTOCOL = re.compile(r"(openai-insecure-api-key\.)[^\s'\",;]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every bearer token / Authorization value replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _KEY_SUBPROTOCOL.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose every output line went through `redact`."""

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__(fmt)
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def configure_logging(level: str, secrets: Iterable[str]) -> logging.Handler:
    """Send all logging to stderr through a `RedactingFormatter`; returns the installed handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # hypercorn's "Running on ... (CTRL + C to quit)" lines would duplicate (and contradict) ours.
    logging.getLogger(f"{LOGGER_NAME}.hypercorn").setLevel(max(logging.WARNING, root.level))
    # httpx (the openai backend's client) logs every upstream request at INFO: our request line says enough.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
    return handler


def get_logger(part: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{part}")
