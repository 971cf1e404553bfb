"""The one boundary where ``anthropic`` (and ``httpx2``) exceptions become engine errors.

Theory of operation: `ERROR_TABLE` is scanned in order and the first row whose class matches wins, so the
most specific classes come first (``APITimeoutError`` before ``APIConnectionError``, ``OverloadedError``
before ``InternalServerError``, every status class before ``APIStatusError``). The adapter raises the result
``from`` the original exception, so logs keep the cause while clients see only the engine error.

Status errors raised *inside* a 200 stream (an ``event: error`` after text was sent) reach us as a bare
``APIStatusError`` with status 200; `error_type_class` turns the body's ``error.type`` into the class the SDK
would have raised for that error as an HTTP status, and that class's row decides.

Messages never contain the API key. For a refused key they say so without repeating upstream's wording; for
other errors they carry upstream's message (useful to the client: "temperature: must be <= 1") and the
upstream request id when there is one (useful to the operator).
"""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx2

from ..errors import Internal, InvalidRequest, TrinferError, Unavailable, UpstreamRateLimited
from ..retry_after import retry_after_seconds

Translator = Callable[[Exception], TrinferError]


def _upstream_detail(exc: Exception) -> str:
    if not isinstance(exc, anthropic.APIStatusError):
        return ""
    message = exc.api_message or ""
    request_id = f" (upstream request id {exc.request_id})" if exc.request_id else ""
    return f": {message}{request_id}" if message else request_id


def _key_refused(exc: Exception) -> TrinferError:
    status = exc.status_code if isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 400 else None
    how = f"HTTP {status}" if status else "in the stream"
    return Unavailable(
        f"the upstream API key was refused by Anthropic ({how}); the server operator must check the key "
        "configured for this backend"
    )


def _rate_limited(exc: Exception) -> TrinferError:
    retry_after = retry_after_seconds(exc.response.headers) if isinstance(exc, anthropic.APIStatusError) else None
    return UpstreamRateLimited(
        f"Anthropic rate-limited this request{_upstream_detail(exc)}", retry_after=retry_after
    )


def _bad_request(exc: Exception) -> TrinferError:
    return InvalidRequest(f"Anthropic rejected the request{_upstream_detail(exc)}")


def _too_large(exc: Exception) -> TrinferError:
    return InvalidRequest(
        f"the request is too large for Anthropic{_upstream_detail(exc)}", status=413, code="request_too_large"
    )


def _upstream(status: int, what: str, code: str | None = None) -> Translator:
    def translate(exc: Exception) -> TrinferError:
        return Unavailable(f"{what}{_upstream_detail(exc)}", status=status, code=code)

    return translate


def _unexpected(exc: Exception) -> TrinferError:
    return Internal(f"unexpected error in the anthropic client: {type(exc).__name__}")


#: (exception class, translator), most specific first.
ERROR_TABLE: tuple[tuple[type[Exception], Translator], ...] = (
    (anthropic.APITimeoutError, _upstream(504, "Anthropic did not answer in time")),
    (anthropic.APIConnectionError, _upstream(502, "could not connect to Anthropic")),
    (anthropic.AuthenticationError, _key_refused),
    (anthropic.PermissionDeniedError, _key_refused),
    (anthropic.RateLimitError, _rate_limited),
    (anthropic.ContentTooLargeError, _too_large),
    (anthropic.BadRequestError, _bad_request),
    (anthropic.UnprocessableEntityError, _bad_request),
    (anthropic.NotFoundError, _upstream(502, "Anthropic does not know the upstream model or endpoint")),
    (anthropic.RequestTimeoutError, _upstream(504, "Anthropic timed out reading the request")),
    (anthropic.OverloadedError, _upstream(503, "Anthropic is overloaded", "backend_unavailable")),
    (anthropic.ServiceUnavailableError, _upstream(503, "Anthropic is unavailable", "backend_unavailable")),
    (anthropic.GatewayTimeoutError, _upstream(504, "Anthropic timed out")),
    (anthropic.InternalServerError, _upstream(502, "Anthropic failed")),
    (anthropic.APIStatusError, _upstream(502, "Anthropic answered with an unexpected error")),
    (anthropic.APIResponseValidationError, _upstream(502, "Anthropic sent a response that could not be read")),
    (httpx2.TimeoutException, _upstream(504, "Anthropic stopped sending in time")),
    (httpx2.HTTPError, _upstream(502, "the connection to Anthropic failed")),
    (anthropic.AnthropicError, _unexpected),
)

#: Anthropic ``error.type`` -> the exception class the SDK raises for that error as an HTTP status.
ERROR_TYPE_CLASSES: dict[str, type[anthropic.APIStatusError]] = {
    "invalid_request_error": anthropic.BadRequestError,
    "authentication_error": anthropic.AuthenticationError,
    "permission_error": anthropic.PermissionDeniedError,
    "not_found_error": anthropic.NotFoundError,
    "request_too_large": anthropic.ContentTooLargeError,
    "rate_limit_error": anthropic.RateLimitError,
    "api_error": anthropic.InternalServerError,
    "timeout_error": anthropic.GatewayTimeoutError,
    "overloaded_error": anthropic.OverloadedError,
}


def error_type_class(exc: Exception) -> type[Exception]:
    """The class whose row decides: for an in-stream error (HTTP 200), the class matching ``error.type``."""
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code < 400 and exc.type is not None:
        return ERROR_TYPE_CLASSES.get(exc.type, type(exc))
    return type(exc)


def translate_exception(exc: Exception) -> TrinferError | None:
    """The engine error for an ``anthropic``/``httpx2`` exception, or None for anything else (not ours)."""
    cls = error_type_class(exc)
    for row_class, translate in ERROR_TABLE:
        if issubclass(cls, row_class):
            return translate(exc)
    return None
