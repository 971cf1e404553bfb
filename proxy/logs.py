"""Logging: stdlib ``logging`` to stderr, one line per request, with secrets redacted on the way out.

The redaction is a formatter, applied to the fully formatted line (message, arguments and traceback), so that
nothing logged anywhere in the process - by trinfer, hypercorn or a backend library - can print a configured
API key or the value of an ``Authorization`` header / bearer token.

The same formatter keeps every message on one line: control characters in the message (not in an attached
traceback, which is multi-line by nature) are escaped and the message is capped at `MAX_MESSAGE_CHARS`. That is
the backstop; client values are escaped and capped where they are logged (`proxy.log_values.loggable`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .log_values import escape_controls

LOGGER_NAME = "trinfer"
REDACTED = "[redacted]"
#: The longest message a log line carries (before its traceback, if any).
MAX_MESSAGE_CHARS = 16 * 1024

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

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}...[{len(message) - MAX_MESSAGE_CHARS} more chars]"
        record.message = escape_controls(message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


#: The attribute of a log record that holds its structured fields (``log.info(..., extra={FIELDS: {...}})``).
FIELDS = "trinfer_fields"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    record's structured fields (the request line's ``request_id``, ``route``, ``model``, ``status``...) and
    ``exception`` (a traceback, as text). JSON escapes every control character, so no value can break the
    line; the message is capped as in text mode and the whole line goes through `redact`.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}...[{len(message) - MAX_MESSAGE_CHARS} more chars]"
        created = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, Mapping):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, separators=(",", ":"), default=str), self._secrets)


def configure_logging(level: str, secrets: Iterable[str], *, log_format: str = "text") -> logging.Handler:
    """Send all logging to stderr, as redacted text lines or JSON objects; returns the installed handler."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(secrets)
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    handler.setFormatter(formatter)
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
