"""The error taxonomy. Every error a client can see is a `TrinferError`, and carries its wire mapping.

Theory of operation: each class holds, as data, the HTTP status, the OpenAI error ``type`` and ``code`` it
becomes; an instance may narrow them (``code="context_length_exceeded"``, ``status=504``) and may carry the
request field at fault (``param``) and a ``retry_after`` in seconds. The proxy's own errors subclass it too
(``compat.errors``), and each dialect renders any of them into (status, headers, body) with one function
(``compat.openai.errors.render_error`` on OpenAI routes). Anything that is *not* a `TrinferError` is a bug: the
proxy logs it with a request id and answers 500 ``internal_error`` without details.

Backends raise only these. Library exceptions (``llama_cpp``, ``anthropic``) are translated at the adapter
boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class TrinferError(Exception):
    """Base of every client-visible error."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = "internal_error"
    #: True when the failure is the backend's fault (counts against its circuit breaker).
    backend_fault: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.http_status = status if status is not None else self.status
        self.retry_after = retry_after


class GenerateError(TrinferError):
    """A generation failed. Raised by ``Backend.generate``/``generate_v2`` (and by ``embed``, see below)."""


class EmbedError(TrinferError):
    """An embedding request failed."""


class NotReady(GenerateError, EmbedError):
    """The backend has not finished booting (or is stopping)."""

    status = 503
    error_type = "server_error"
    default_code = "backend_unavailable"
    backend_fault = False


class InvalidRequest(GenerateError, EmbedError):
    """The request is valid OpenAI JSON but this backend cannot serve it (e.g. context too long)."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


def raw_prompt_refused(model: str) -> InvalidRequest:
    """The 400 for a raw-text prompt (legacy completions) sent to a model that answers conversations only:
    refused on ``model``, never wrapped in a chat silently."""
    return InvalidRequest(
        f"The model '{model}' answers conversations only; it does not complete raw text "
        "(use /v1/chat/completions or /v1/responses)",
        param="model",
        code="unsupported_parameter",
    )


class Unavailable(GenerateError, EmbedError):
    """The backend (or its upstream) failed or cannot be reached. Status 502 unless narrowed (503, 504)."""

    status = 502
    error_type = "server_error"
    default_code = "upstream_error"
    backend_fault = True


class UpstreamRateLimited(Unavailable):
    """The upstream provider rate-limited us; its Retry-After is passed on to the client."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"
    backend_fault = False


class UpstreamRejected(GenerateError, EmbedError):
    """An upstream OpenAI-compatible server refused the request with a 4xx: the client made a mistake there.

    The upstream's status and OpenAI error object (``error``: message, type, param, code) reach the client
    as they are, so a client behind trinfer sees what it would have seen talking to the upstream itself.
    Never the backend's fault: it does not count against the circuit breaker.
    """

    status = 400
    error_type = "invalid_request_error"
    default_code = None

    def __init__(self, status: int, error: Mapping[str, Any]) -> None:
        message = error.get("message")
        code = error.get("code")
        param = error.get("param")
        super().__init__(
            message if isinstance(message, str) else "the upstream server refused the request",
            param=param if isinstance(param, str) else None,
            code=code if isinstance(code, str) else None,
            status=status,
        )
        #: The error object exactly as the upstream sent it, with OpenAI's four keys always present.
        self.error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
            **error,
        }


class Internal(GenerateError, EmbedError):
    """A bug or unexpected state inside the backend."""

    status = 500
    error_type = "server_error"
    default_code = "internal_error"
    backend_fault = True


class Unsupported(EmbedError):
    """The backend does not compute embeddings (or not with these options)."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "unsupported_model"


__all__ = [
    "EmbedError",
    "GenerateError",
    "Internal",
    "InvalidRequest",
    "NotReady",
    "TrinferError",
    "Unavailable",
    "Unsupported",
    "UpstreamRateLimited",
    "UpstreamRejected",
]
