"""Request headers refused before any routing: a malformed ``Host``, more than one ``Authorization``.

Both are client mistakes that used to reach code that cannot cope with them: werkzeug binds its URL map to
the ``Host`` value and raises on one it cannot IDNA-encode (``a..b``, a 300-character label), on every route;
and with two ``Authorization`` headers which one counts is up to whichever layer reads them. Each gets a 400
with the OpenAI error body instead, on HTTP requests and WebSocket upgrades alike.

``Host`` follows RFC 9110 section 7.2 / RFC 3986 section 3.2.2: ``uri-host [ ":" port ]`` where ``uri-host``
is an IPv6 literal in brackets or a reg-name (which covers IPv4 addresses): ASCII unreserved characters,
sub-delims and percent-escapes, each dot-separated label 1 to 63 characters (what IDNA encoding, and DNS,
accept), at most `MAX_HOST_CHARS` in all. An empty ``Host`` is allowed (HTTP/1.1 permits it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from compat.errors import RequestValidationError

#: The longest ``Host`` value accepted (a DNS name is at most 253 characters, plus ``:65535``).
MAX_HOST_CHARS = 260

_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]*")


def host_problem(value: str) -> str | None:
    """What is wrong with the ``Host`` header ``value``, or None if it is well formed."""
    if len(value) > MAX_HOST_CHARS:
        return f"is longer than {MAX_HOST_CHARS} characters"
    if value.startswith("["):
        literal, closed, rest = value[1:].partition("]")
        if not closed:
            return "has an unclosed IPv6 literal"
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return "has an invalid IPv6 address"
        if rest and not rest.startswith(":"):
            return "has characters after its IPv6 literal"
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
        if not _REG_NAME.fullmatch(name):
            return "has characters not allowed in a host name"
        if name and not all(0 < len(label) <= 63 for label in name.removesuffix(".").split(".")):
            return "has an empty label or one longer than 63 characters"
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        return "has an invalid port"
    return None


def header_refusal(headers: Iterable[tuple[bytes, bytes]]) -> RequestValidationError | None:
    """The 400 for a request with a malformed ``Host`` or several ``Authorization`` (or ``x-api-key``, the
    Anthropic routes' key header) headers, or None: with several, which one is the key would be ambiguous."""
    counts = {b"authorization": 0, b"x-api-key": 0}
    for name, value in headers:
        key = name.lower()
        if key == b"host":
            problem = host_problem(bytes(value).decode("latin-1"))
            if problem is not None:
                return RequestValidationError(f"The Host header {problem}", code="invalid_host")
        elif key in counts:
            counts[key] += 1
    for header, label in ((b"authorization", "Authorization"), (b"x-api-key", "x-api-key")):
        if counts[header] > 1:
            return RequestValidationError(
                f"The request has {counts[header]} {label} headers; send exactly one",
                code="duplicate_authorization",
            )
    return None
