"""The SSE response body shared by every streaming dialect: a `Generation` drained into body pieces.

A dialect supplies an `SSEEncoder` (its own framing: OpenAI ``data:`` lines and ``[DONE]``, the Responses
API's ``event:`` lines, Anthropic's events); this module does the rest, the same for all of them:
- each batch of the generation (the events a fast backend has already buffered) becomes as few body pieces
  as possible - one socket write instead of one per event, which is where a fast producer's time went - but
  a piece stops growing at `SSE_BATCH_BYTES`: ``write_timeout_s`` bounds each write, so a piece must stay small
  enough for a client that reads slowly but steadily to take it within that time;
- after `Done` (the slot is already free by then, see `proxy.pipeline`) it sends the encoder's ``end()``;
- a failure after streaming began sends the pieces encoded before it, then the encoder's one error event,
  and nothing else (no end marker); a bug is logged with the request id and reveals nothing to the client.
The body is an async generator, so it opens no nursery or cancel scope; cancelling it (client disconnect,
write timeout) runs ``finally``, which stops the producer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

from adapters.errors import TrinferError
from adapters.types import Event

from .inflight import RequestInfo
from .logs import get_logger
from .request_io import Reply

log = get_logger("sse")

SSE_CONTENT_TYPE = b"text/event-stream; charset=utf-8"
SSE_HEADERS = ((b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"))

#: A body piece takes no more events once it holds this many bytes.
SSE_BATCH_BYTES = 16 * 1024


class EventBatches(Protocol):
    """What an SSE body drains: a `proxy.pipeline.Generation`, or several in turn (legacy completions with
    several prompts, `proxy.completions.PromptsInTurn`)."""

    def __aiter__(self) -> AsyncIterator[list[Event]]: ...

    def cancel(self) -> None: ...


class SSEEncoder(Protocol):
    """A dialect's SSE framing of engine events (sans-IO: it lives in ``compat/<dialect>/``)."""

    def encode(self, event: Event) -> bytes:
        """The SSE bytes for one engine event (possibly several SSE events, possibly none)."""
        ...

    def end(self) -> bytes:
        """What follows the last event after `Done` (``data: [DONE]``), or ``b""``."""
        ...

    def error(self, exc: BaseException, request_id: str) -> bytes:
        """The one in-band error event for a failure after streaming began."""
        ...


def sse_response(generation: EventBatches, encoder: SSEEncoder, info: RequestInfo) -> Reply:
    """A ``200 text/event-stream`` reply whose body is `sse_body` (it lasts as long as the generation; each
    write is bounded by ``write_timeout_s`` instead)."""
    return Reply(200, SSE_CONTENT_TYPE, sse_body(generation, encoder, info), SSE_HEADERS)


async def sse_body(
    generation: EventBatches, encoder: SSEEncoder, info: RequestInfo
) -> AsyncGenerator[bytes, None]:
    """The SSE body of ``generation`` (first event already in hand); see the module docstring."""
    pending: list[bytes] = []
    size = 0
    try:
        async for batch in generation:
            if len(batch) == 1:  # the common case on a stream: one token per batch
                data = encoder.encode(batch[0])
                if data:
                    yield data
                continue
            for count, event in enumerate(batch, 1):
                pending.append(encoder.encode(event))
                size += len(pending[-1])
                if count == len(batch) or size >= SSE_BATCH_BYTES:
                    if size:
                        yield b"".join(pending)
                    pending.clear()
                    size = 0
        end = encoder.end()
        if end:
            yield end
    except Exception as exc:
        if not isinstance(exc, TrinferError):
            log.error("internal error mid-stream in request %s", info.request_id, exc_info=exc)
        info.ended_by = "error after streaming began: " + str(getattr(exc, "code", None) or "internal_error")
        yield b"".join([*pending, encoder.error(exc, info.request_id)])
    finally:
        generation.cancel()
