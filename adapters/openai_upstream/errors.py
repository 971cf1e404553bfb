"""The one boundary where the HTTP client's exceptions and upstream HTTP statuses become engine errors.

Theory of operation: a failure talking to one base URL is first classified as a `Failure` - what went wrong
and whether another base URL may be tried instead - and only when no other URL will be tried does it become
the engine error the client sees (`Failure.error`). Transport exceptions are classified by `TRANSPORT_TABLE`,
scanned in order, most specific class first (the classes of `client`, then a catch-all); statuses by
`status_failure`.

May another URL be tried (``failover``)? Only when nothing has reached the client yet - the caller checks
that - and only for failures that say the URL is unfit: the connection was refused or timed out, it was
reset or closed before the answer's headers (a pooled connection the server dropped counts the same), or
the upstream answered 5xx. Those also mark the URL down until its health probe passes. A stream that broke
off after a 2xx but before its first event moves on too, without marking the URL down (`Failure.cut`); a
non-streaming answer's body is read whole before any event is sent, so one that breaks off counts like a
failure before the headers. A read timeout is not a reason: a slow upstream is busy, not dead, and sending
the same long prompt elsewhere would double the load.

What the client sees: an upstream 4xx keeps its status and OpenAI error object (`UpstreamRejected`). 401
and 403 too, but they refuse the *operator's* key, not the client's: their message is replaced by one that
says so (hosted APIs echo part of the key they refused in it, which no client may see), and the operator
gets a line in the log and ``last_error`` on the status page; 429 becomes 429 ``upstream_rate_limited``
with the upstream's ``Retry-After``; 5xx, resets and read timeouts are 502 ``upstream_error``; a URL that
cannot be reached at all is 503 ``backend_unavailable``. Messages name "the upstream server", never its
address or the key.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping

from ..errors import TrinferError, Unavailable, UpstreamRateLimited, UpstreamRejected
from ..retry_after import retry_after_seconds
from . import client


class Kind(enum.Enum):
    """What went wrong with one base URL."""

    UNREACHABLE = "unreachable"  # refused, DNS, connect timeout: down, failover, 503 when it was the last
    BROKEN = "broken"  # reset / closed before the answer's headers, or 5xx: down, failover, 502 as the last
    CUT = "cut"  # the answer (2xx) broke off before its first event: failover, but the probe says if it is down
    FAILED = "failed"  # read timeout, protocol error, in-band error: 502, no failover
    REFUSED = "refused"  # the upstream's own answer to the client (4xx, 429): passed on, no failover
    KEY = "key refused"  # 401/403: passed on like REFUSED, and noted on the URL for the operator


class Failure(Exception):
    """One base URL failed one request. ``reason`` is short, for logs and the status page.

    Raised inside the backend only (between one attempt and the loop that picks the next URL); what leaves
    the backend is always ``error``.
    """

    def __init__(self, kind: Kind, reason: str, error: TrinferError) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.error = error

    @property
    def failover(self) -> bool:
        """True when the request may go to another URL (if nothing was sent to the client yet)."""
        return self.kind in (Kind.UNREACHABLE, Kind.BROKEN, Kind.CUT)

    @property
    def marks_down(self) -> bool:
        """True when the URL is unfit: it is down until its probe passes."""
        return self.kind in (Kind.UNREACHABLE, Kind.BROKEN)

    def cut(self) -> Failure:
        """This failure as it counts once the upstream had answered 2xx: a broken stream, not a dead URL.

        (llama-cpp-python, for one, answers a streamed request whose prompt is too long with a 200 and an
        empty body: the client's doing, which must not take the URL out of the pool.)
        """
        return Failure(Kind.CUT, self.reason, self.error) if self.kind is Kind.BROKEN else self


def _unreachable(reason: str) -> Callable[[Exception], Failure]:
    def classify(exc: Exception) -> Failure:
        return Failure(
            Kind.UNREACHABLE,
            reason,
            Unavailable(
                f"the upstream server could not be reached ({reason})", status=503, code="backend_unavailable"
            ),
        )

    return classify


def _broken(reason: str) -> Callable[[Exception], Failure]:
    def classify(exc: Exception) -> Failure:
        return Failure(
            Kind.BROKEN, reason, Unavailable(f"the connection to the upstream server failed ({reason})")
        )

    return classify


def _failed(reason: str) -> Callable[[Exception], Failure]:
    def classify(exc: Exception) -> Failure:
        return Failure(Kind.FAILED, reason, Unavailable(f"the upstream server failed ({reason})"))

    return classify


#: (`client` exception class, classifier), most specific first; the last row takes every other class in
#: `client.TRANSPORT_ERRORS`.
TRANSPORT_TABLE: tuple[tuple[type[Exception], Callable[[Exception], Failure]], ...] = (
    (client.ConnectTimeout, _unreachable("connect timeout")),
    (client.ConnectError, _unreachable("connection refused or failed")),
    (client.ReadTimeout, _failed("no bytes within read_timeout_s")),
    (client.WriteTimeout, _failed("the request could not be sent within read_timeout_s")),
    (client.RemoteProtocolError, _broken("the server closed the connection")),
    (client.ReadError, _broken("connection reset")),
    (client.WriteError, _broken("connection reset while sending")),
    (Exception, _failed("HTTP error")),
)


def transport_failure(exc: Exception) -> Failure:
    """The `Failure` for a `client` exception (one of `client.TRANSPORT_ERRORS`)."""
    classify = next(classify for cls, classify in TRANSPORT_TABLE if isinstance(exc, cls))
    return classify(exc)


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> Failure:
    """The `Failure` for a non-2xx upstream answer (``body`` is what was read of it)."""
    error = error_object(body)
    message = error.get("message") if isinstance(error.get("message"), str) else None
    detail = f": {message}" if message else ""
    if status == 429:
        return Failure(
            Kind.REFUSED,
            "HTTP 429",
            UpstreamRateLimited(
                f"the upstream server rate-limited this request{detail}", retry_after=retry_after_seconds(headers)
            ),
        )
    if status in (401, 403):
        message = "the upstream server refused the API key configured for this backend; the operator must fix it"
        return Failure(
            Kind.KEY,
            f"HTTP {status}: the upstream refused the configured API key",
            UpstreamRejected(status, {**error, "message": message}),
        )
    if 400 <= status < 500:
        return Failure(Kind.REFUSED, f"HTTP {status}", UpstreamRejected(status, error))
    if status >= 500:
        return Failure(
            Kind.BROKEN, f"HTTP {status}", Unavailable(f"the upstream server failed with HTTP {status}{detail}")
        )
    return Failure(
        Kind.FAILED,
        f"HTTP {status}",
        Unavailable(f"the upstream server answered with an unexpected HTTP {status}"),
    )


def error_object(body: bytes) -> dict[str, object]:
    """The OpenAI error object in an upstream's error body, whatever shape the server used.

    ``{"error": {...}}`` (OpenAI, trinfer, llama.cpp) is taken as it is; ``{"object": "error", "message": ...}``
    (older vLLM) and ``{"detail": ...}`` (FastAPI validation) keep their message; anything else (HTML from a
    gateway, plain text) becomes a message made of its first 200 characters.
    """
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        inner = parsed.get("error")
        if isinstance(inner, dict):
            return dict(inner)
        if isinstance(inner, str):
            return {"message": inner}
        if isinstance(parsed.get("message"), str):
            return {key: parsed[key] for key in ("message", "type", "param", "code") if key in parsed}
        if "detail" in parsed:
            detail = parsed["detail"]
            return {"message": detail if isinstance(detail, str) else json.dumps(detail)[:1000]}
    text = body.decode("utf-8", "replace").strip()
    return {"message": text[:200] or "the upstream server sent no error message"}
