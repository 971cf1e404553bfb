"""The one place that picks a backend's entry point for a request: ``generate_v2`` or ``generate`` (v1), and
``embed`` for an embeddings request the backend can take.

Every dialect builds a `ResolvedV2`. A backend whose capabilities say ``v2`` gets it as it is; a v1-only
backend gets its plain-text `Resolved` form when the request needs nothing v1 lacks, and a request that does
(tools, images, tool results, a response format) is refused with 400 ``unsupported_parameter``
before it waits for a slot. A raw-text prompt (legacy completions) goes only to a backend whose capabilities
say ``raw_prompt``: it is never wrapped in a chat template silently. Reasoning blocks of earlier turns
(`ThinkingBlock`, `RedactedThinkingBlock`) reach only a backend whose capabilities say ``thinking_blocks``; for
any other they are removed here (`request_for`), so no backend has to know about blocks it cannot use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .backend import Backend
from .errors import InvalidRequest, raw_prompt_refused
from .stream import Producer
from .types import EmbedResolved, EmbedResult, ResolvedV2


def request_for(backend: Backend, req: ResolvedV2) -> ResolvedV2:
    """``req`` as ``backend`` receives it: without reasoning blocks unless it takes them back."""
    return req if backend.capabilities().thinking_blocks else req.without_thinking_blocks()


def producer_for(backend: Backend, req: ResolvedV2) -> Producer:
    """The producer that runs ``req`` on ``backend``: v2 when the backend has it, else v1 if ``req`` allows.

    A raw-text prompt, ``n > 1`` and log probabilities are refused (400 ``unsupported_parameter``) for a backend
    whose capabilities lack them, before any work."""
    capabilities = backend.capabilities()
    req = request_for(backend, req)
    if req.prompt is not None and not (capabilities.v2 and capabilities.raw_prompt):
        raise raw_prompt_refused(req.model)
    if req.sampling.n > 1 and not capabilities.choices:
        raise InvalidRequest(
            f"The model '{req.model}' generates one choice per request ('n' must be 1).",
            param="n",
            code="unsupported_parameter",
        )
    if req.sampling.top_logprobs is not None and not capabilities.logprobs:
        raise InvalidRequest(
            f"The model '{req.model}' does not report log probabilities: leave 'logprobs' unset.",
            param="logprobs",
            code="unsupported_parameter",
        )
    if capabilities.v2:
        return lambda send: backend.generate_v2(req, send)
    if not req.needs_v2():
        v1 = req.to_v1()
        return lambda send: backend.generate(v1, send)
    raise InvalidRequest(
        f"The model '{req.model}' does not support tools, images, tool results or response_format",
        param="model",
        code="unsupported_parameter",
    )


def embedder_for(backend: Backend, req: EmbedResolved) -> Callable[[EmbedResolved], Awaitable[EmbedResult]]:
    """``backend.embed``, unless ``req`` holds token ids and the backend has no vocabulary to read them with
    (capability ``embed_token_ids``): then 400 ``unsupported_parameter``, before the request waits for a slot."""
    if req.token_ids and not backend.capabilities().embed_token_ids:
        raise InvalidRequest(
            f"The model '{req.model}' takes text input only: its backend cannot embed token ids.",
            param="input",
            code="unsupported_parameter",
        )
    return backend.embed
