"""The `Backend` ABC: the one interface between the daemon and an inference engine.

A backend instance is shared by every request; its methods must be safe to call concurrently. How many
generations run at once is decided by the daemon's admission queue, not by the backend.

Streams are owned, never loose: ``generate``/``generate_v2`` are *producers*. They push events into the send
channel they are given and return when the generation is over. The caller runs them inside a nursery it owns
(see `adapters.stream.open_event_stream`), so cancelling the caller cancels the producer. A producer never
closes the channel it was given and never hands out an async generator.

Contract for producers:
- send zero or more content events, then exactly one `Done`, then return;
- raise a `GenerateError` subclass to fail (before the first event: becomes an HTTP status; after: ends the
  stream with an in-band error event);
- check for cancellation between tokens (trio does this at every ``await``; a worker thread must poll).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import trio

from .errors import InvalidRequest, Unsupported
from .types import BackendCapabilities, EmbedResolved, EmbedResult, Event, Resolved, ResolvedV2


class BackendConfigError(ValueError):
    """A backend's config table is invalid. The daemon reports it in one line and exits 2."""


class Backend(abc.ABC):
    """An inference engine. See the module docstring for the producer contract."""

    #: Stable id of the implementation: "mock", "llamacpp", "anthropic". For status and logs only.
    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build an (unbooted) backend from its config table's kind-specific keys.

        Raises `BackendConfigError` naming the bad key. Must not do I/O or load models: that is `boot`.
        """

    async def boot(self) -> None:  # noqa: B027 - default: nothing to load
        """Load models, check credentials. Run once, by the daemon, before the backend is used.

        Raising any exception fails the boot (the daemon logs it and exits non-zero). Blocking work must go to
        a worker thread. After it returns, `ready()` must be true. (Addition to the Rust trait; see
        docs/design-notes.md.)
        """

    async def maintain(self) -> None:  # noqa: B027 - default: no background work
        """Background upkeep while the backend serves: health probes of upstream URLs, and the like.

        The daemon runs it in a task it owns, started after `boot` returned and cancelled before `stop` is
        awaited, so the backend needs no nursery of its own and nothing it starts outlives it. It may run
        forever (it is cancelled) or return early; an exception it raises is logged and ends only the upkeep.
        Default: nothing. (Addition to the Rust trait; see docs/design-notes.md.)
        """

    @abc.abstractmethod
    def ready(self) -> bool:
        """True once `boot` has finished and until `stop` begins."""

    def capabilities(self) -> BackendCapabilities:
        """What this backend can do. Default: text-only v1."""
        return BackendCapabilities()

    def status(self) -> dict[str, Any]:
        """Backend-specific details for /admin/status (load progress, model path...). Default: none."""
        return {}

    @abc.abstractmethod
    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        """v1 plain-text chat: send `Token` events then one `Done`."""

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        """v2 chat: send `Text`/`Thinking`/`ToolUse` events then one `Done`. Default: not supported."""
        raise InvalidRequest(
            f"backend {self.name!r} does not support tools, images or response_format",
            code="unsupported_parameter",
        )

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        """One vector per input, in order. Default: `Unsupported`."""
        raise Unsupported(f"model {req.model!r} does not support embeddings", param="model")

    async def count_tokens(self, req: ResolvedV2) -> int:
        """The prompt tokens ``req`` would take, counted with this backend's own tokenizer over the prompt as
        the backend renders it (chat template, tools). Default: `Unsupported` (400: this backend cannot count).
        """
        raise Unsupported(f"backend {self.name!r} cannot count tokens for model {req.model!r}", param="model")

    async def stop(self, timeout: float) -> None:  # noqa: B027, ASYNC109 - the contract (DESIGN s.2) takes a deadline
        """Best effort: release model memory, threads and connections within ``timeout`` seconds."""
