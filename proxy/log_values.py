"""Client-chosen values made safe to put in a log line: control characters escaped, length capped.

Whatever a client picks - the model id, the request path (percent-decoded, so ``%0a`` is a newline), a
WebSocket request id, a header value - ends up in a log line. Raw, a newline in it forges a whole line of its
own and a 500 KB model id writes a 500 KB line. `loggable` escapes every character that could break or disguise
a line (C0 and C1 controls, DEL, Unicode line and paragraph separators, bidirectional overrides) as ``\\xNN`` /
``\\uNNNN``, escapes the backslash itself so an escape cannot be faked, and keeps at most `MAX_LOGGED_CHARS`
characters, saying how many were cut.

`escape_controls` escapes the control characters only (no cap, backslashes kept): the log formatter applies it
to every message as a backstop (`proxy.logs.RedactingFormatter`).
"""

from __future__ import annotations

import re

#: The longest client value, in characters, that a log line carries.
MAX_LOGGED_CHARS = 200

_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_OR_BACKSLASH = re.compile(f"[\\\\{_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every line-breaking or line-disguising character escaped."""
    return _UNSAFE.sub(_escape, text)


def loggable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """A client-chosen ``value`` as it may appear in a log line: escaped, and cut to ``limit`` characters."""
    text = value if isinstance(value, str) else str(value)
    kept = _UNSAFE_OR_BACKSLASH.sub(_escape, text[:limit])
    return kept if len(text) <= limit else f"{kept}...[{len(text) - limit} more chars]"
