"""The chat playground (DESIGN.md section 12): one static page served by the inference listener at ``/``.

Plain HTML, CSS and JS shipped in this package: no build step, nothing fetched from anywhere else. The page
calls the same OpenAI-compatible routes as any client (``/v1/models``, streaming ``/v1/chat/completions``),
so it needs no server code of its own beyond serving these files. They are public (the page asks for the key
and keeps it in ``sessionStorage``); a strict Content-Security-Policy allows only this origin's own script,
style and API, and no framing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

ASSET_PREFIX = "/playground/"

#: Only our own files, no inline script or style, no plugins, no framing, no form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_TYPES = {"index.html": "text/html", "playground.css": "text/css", "playground.js": "text/javascript"}

#: Paths of the page and its assets (served without an API key).
PUBLIC_PATHS = frozenset({"/", *(ASSET_PREFIX + name for name in _TYPES if name != "index.html")})


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str

    def headers(self) -> dict[str, str]:
        return {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        }


@cache
def asset(name: str) -> Asset | None:
    """The file ``name`` of the page (``index.html``, ``playground.css``, ``playground.js``), or None."""
    mimetype = _TYPES.get(name)
    if mimetype is None:
        return None
    body = resources.files(__name__).joinpath(name).read_bytes()
    return Asset(body, mimetype + "; charset=utf-8")
