"""Cross-origin resource sharing: which browser pages on other origins may call the server, and how.

A browser page on another origin (a web UI on ``http://localhost:5173``, say) can call trinfer only if the
server says so. Before a request with an ``Authorization`` or JSON ``Content-Type`` header, the browser sends a
*preflight* (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``), which carries no key; then the
real request, whose response it shows the page only if it names the page's origin.

Policy (``server.cors_allow_origins``, validated in `proxy.config`): a list of origins, or ``["*"]`` for any
origin - allowed only together with API keys, because on a keyless server any web page open in the user's
browser could otherwise drive the model and read its answers. With an empty list (the default) no origin is
allowed and responses carry no CORS headers.

What the middleware does with it (`proxy.asgi.RequestMiddleware`):
- a preflight is answered before auth and before routing: 204 with the allowed methods, the request headers the
  browser asked for, and a max age when the origin is allowed; 403 with an OpenAI error body naming the setting
  when it is not (the browser then refuses the real request, so no key is ever needed for the preflight);
- every other response to a request from an allowed origin - errors included, so a page can read a 401 or a
  429 - names the origin and exposes the headers SDKs read (``x-request-id``, ``retry-after``);
- any other request that carries an ``Origin`` neither allowed nor the server's own (`same_origin`: the
  ``Host`` the browser sent it to) is refused with 403 before auth and routing, WebSocket upgrades included.
  A browser sends a "simple" request (a ``POST`` with a ``text/plain`` body, a WebSocket handshake) without
  a preflight; it would only hide the answer from the page, after the server had run it - a generation
  started by whatever page is open in the user's browser. Clients that are not browsers send no ``Origin``
  and are not affected.
No credentials mode: keys travel in the ``Authorization`` header, never in cookies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.errors import TrinferError

from .log_values import loggable

Headers = list[tuple[bytes, bytes]]

ANY_ORIGIN = "*"
ALLOW_METHODS = "GET, POST, OPTIONS"
#: Response headers a page may read besides the CORS-safelisted ones: what the openai / anthropic SDKs look at.
EXPOSE_HEADERS = "x-request-id, retry-after"
#: How long a browser may cache a preflight answer.
MAX_AGE_S = 600
#: The most request headers a preflight answer lists (the openai SDK asks for about a dozen).
MAX_REQUEST_HEADERS = 64

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")


class OriginNotAllowed(TrinferError):
    """A preflight or request from an origin that ``server.cors_allow_origins`` does not list."""

    status = 403
    error_type = "invalid_request_error"
    default_code = "origin_not_allowed"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """The allowed origins (lowercase ``scheme://host[:port]``), or every origin when ``any_origin``."""

    origins: frozenset[str] = frozenset()
    any_origin: bool = False

    @classmethod
    def from_config(cls, origins: Sequence[str]) -> CorsPolicy:
        """The policy for a validated ``server.cors_allow_origins``."""
        if tuple(origins) == (ANY_ORIGIN,):
            return cls(any_origin=True)
        return cls(origins=frozenset(origins))

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    def refusal(self, origin: str | None, host: str | None) -> OriginNotAllowed | None:
        """The 403 for a request sent with ``Origin: origin`` to ``Host: host``, or None: no ``Origin``, an
        allowed one, or the server's own (`same_origin`)."""
        if origin is None or self.allows(origin) or same_origin(origin, host):
            return None
        return self._not_allowed(origin)

    def _not_allowed(self, origin: str) -> OriginNotAllowed:
        setting = "it is empty" if not self.origins else "it does not list this origin"
        return OriginNotAllowed(
            f"Cross-origin requests from {loggable(origin)} are not allowed: "
            f"server.cors_allow_origins decides ({setting})"
        )

    def response_headers(self, origin: str | None) -> Headers:
        """The CORS headers for any response to a request that sent ``Origin: origin`` (none if not allowed)."""
        if origin is None or not self.allows(origin):
            return []
        if self.any_origin:
            return [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            ]
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
            (b"vary", b"Origin"),
        ]

    def preflight(self, origin: str, requested_headers: str | None) -> Headers:
        """The headers a 204 preflight answer for an allowed ``origin`` has on top of `response_headers`;
        `OriginNotAllowed` for any other origin.

        The browser's ``Access-Control-Request-Headers`` are echoed back (those that are valid header names,
        at most `MAX_REQUEST_HEADERS`): the SDKs send their own ``x-stainless-*`` headers, which a fixed list
        would go out of date with, and a key is still needed for the request itself.
        """
        if not self.allows(origin):
            raise self._not_allowed(origin)
        headers = [
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-max-age", str(MAX_AGE_S).encode()),
            (b"vary", b"Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        names = [n.strip().lower() for n in (requested_headers or "").split(",")]
        allowed = [n for n in names if _TOKEN.match(n)][:MAX_REQUEST_HEADERS]
        if allowed:
            headers.append((b"access-control-allow-headers", ", ".join(dict.fromkeys(allowed)).encode()))
        return headers


#: The default: no origin allowed, no CORS headers.
NO_CORS = CorsPolicy()


_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def same_origin(origin: str, host: str | None) -> bool:
    """True when ``origin`` (``scheme://host[:port]``) names the ``host`` (``Host`` header) it was sent to.

    The scheme is not compared: behind a TLS-terminating proxy the page is ``https://`` while the request
    reaches trinfer as plain HTTP with the same ``Host``. A default port (``:80``, ``:443``) is the same as
    none. ``Origin: null`` (sandboxed frames, ``file:`` pages) is never same-origin.
    """
    scheme, separator, authority = origin.lower().partition("://")
    if not separator or host is None or scheme not in _DEFAULT_PORTS:
        return False
    default = _DEFAULT_PORTS[scheme]
    return authority.removesuffix(default) == host.strip().lower().removesuffix(default)


def is_preflight(method: str, requested_method: str | None) -> bool:
    """True for a CORS preflight (when the request has an ``Origin``): ``OPTIONS`` with
    ``Access-Control-Request-Method``."""
    return method == "OPTIONS" and requested_method is not None
