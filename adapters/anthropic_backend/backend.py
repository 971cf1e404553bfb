"""`AnthropicBackend`: Claude models behind the engine contract, through the official SDK's async client.

The ``anthropic`` SDK's ``AsyncAnthropic`` runs under trio (it is built on ``httpx2``/anyio). One client is
made at boot and shared by every request; the SDK never retries (``max_retries=0``): the client of trinfer
owns retries (DESIGN s.2). Generation always streams upstream (``stream: true``); a non-streaming OpenAI
request is accumulated from the same events by the daemon.

Each generation is one producer (see `adapters.backend`): it opens the upstream stream, feeds every raw event
through a `StreamTranslator` and sends the engine events on. Leaving the producer for any reason - done,
failed, or cancelled because the client went away - closes the upstream HTTP response at once, in a shielded
and bounded close, so Anthropic stops generating (and billing) for a reader that is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, Self, cast

import anthropic
import trio
from anthropic.types import RawMessageStreamEvent

from ..backend import Backend
from ..errors import NotReady, TrinferError, Unavailable, raw_prompt_refused
from ..types import (
    BackendCapabilities,
    Done,
    Event,
    Resolved,
    ResolvedV2,
    Text,
    Token,
)
from .config import OPTION_KEYS, AnthropicOptions, parse_options, read_api_key
from .errors import translate_exception
from .translate_request import build_request
from .translate_stream import StreamTranslator

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The fields of a Messages body that ``count_tokens`` also takes (besides model and messages).
COUNT_TOKENS_FIELDS = frozenset({"system", "tools", "tool_choice", "thinking", "output_config"})
#: Bound on closing an upstream response when a generation ends (the close is shielded from cancellation).
CLOSE_TIMEOUT_S = 5.0


class AnthropicBackend(Backend):
    """Claude models through the Anthropic Messages API. Options: see `adapters.anthropic_backend.config`."""

    name = "anthropic"
    option_keys = OPTION_KEYS

    def __init__(self, options: AnthropicOptions) -> None:
        self.options = options
        self._client: anthropic.AsyncAnthropic | None = None
        self._stopping = False
        self._active = 0
        self._cancelled = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(parse_options(options))

    async def boot(self) -> None:
        """Read the key from the environment (a missing key fails the boot) and build the HTTP client.

        No request is sent: the key is checked by the first generation, whose 401 says the key was refused.
        """
        key = read_api_key(self.options)
        # Building the client loads the TLS trust store: blocking file I/O, so it runs in a worker thread.
        self._client = await trio.to_thread.run_sync(self._make_client, key)

    def _make_client(self, key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=self.options.base_url or DEFAULT_BASE_URL,
            max_retries=0,
            timeout=self.options.timeout_s,
        )

    def ready(self) -> bool:
        return self._client is not None and not self._stopping

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            v2=True,
            vision=True,
            tools=True,
            json_schema=True,
            thinking=True,
            thinking_blocks=True,
            accelerator="remote",
        )

    def status(self) -> dict[str, Any]:
        return {
            "base_url": self.options.base_url or DEFAULT_BASE_URL,
            "model_map": dict(self.options.model_map),
            "api_key_env": self.options.api_key_env,
            "max_tokens_default": self.options.max_tokens_default,
            "timeout_s": self.options.timeout_s,
            "thinking": self.options.thinking,
            "active": self._active,
            "cancelled": self._cancelled,
        }

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        """v1: the same upstream stream, answer text sent as `Token`s (reasoning is not part of v1)."""
        await self._stream(ResolvedV2.from_v1(req), send, v1=True)

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        if req.prompt is not None:
            raise raw_prompt_refused(req.model)  # Claude models take conversations only
        await self._stream(req, send, v1=False)

    async def count_tokens(self, req: ResolvedV2) -> int:
        """Anthropic's own count (``POST /v1/messages/count_tokens``) of the request as it would be sent."""
        client = self._client
        if client is None or self._stopping:
            raise NotReady("the anthropic backend is not ready")
        body = build_request(req, self.options)
        # Only the prompt's fields: count_tokens refuses sampling fields and max_tokens.
        prompt = {key: value for key, value in body.items() if key in COUNT_TOKENS_FIELDS}
        try:
            counted = await client.messages.count_tokens(
                model=body["model"], messages=cast(Any, body["messages"]), extra_body=prompt
            )
        except Exception as exc:
            _raise_translated(exc)
        return counted.input_tokens

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the contract takes a deadline
        """Close the HTTP client (its pooled connections) within ``timeout`` seconds."""
        self._stopping = True
        client, self._client = self._client, None
        if client is not None:
            with trio.move_on_after(timeout):
                await client.close()

    # --- the producer ---------------------------------------------------------------------------------------

    async def _stream(self, req: ResolvedV2, send: trio.MemorySendChannel[Event], *, v1: bool) -> None:
        client = self._client
        if client is None or self._stopping:
            raise NotReady("the anthropic backend is not ready")
        self._active += 1
        try:
            await self._generate(client, req, send, v1=v1)
        except trio.Cancelled:
            self._cancelled += 1
            raise
        finally:
            self._active -= 1

    async def _generate(
        self, client: anthropic.AsyncAnthropic, req: ResolvedV2, send: trio.MemorySendChannel[Event], *, v1: bool
    ) -> None:
        body = build_request(req, self.options)
        translator = StreamTranslator()
        try:
            stream = await client.messages.create(
                model=body.pop("model"),
                max_tokens=body.pop("max_tokens"),
                messages=cast(Any, body.pop("messages")),
                stream=True,
                # The remaining fields (system, tools, sampling...) go as they are: some of them (temperature,
                # top_p, top_k) are not keyword arguments of this SDK version, and all are already wire JSON.
                extra_body=body,
            )
        except Exception as exc:
            _raise_translated(exc)
        try:
            done: Done | None = None
            while done is None:
                event = await _next_event(stream)
                if event is None:
                    raise Unavailable("Anthropic ended the stream before message_stop")
                for out in _translate(translator, event):
                    if isinstance(out, Done):
                        done = out
                    elif not v1:
                        await send.send(out)
                    elif isinstance(out, Text):
                        await send.send(Token(out.text))
            # Read the body to its end before reporting Done, so the connection goes back to the pool.
            await _drain(stream)
            await send.send(done)
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                await stream.close()


async def _next_event(stream: anthropic.AsyncStream[RawMessageStreamEvent]) -> RawMessageStreamEvent | None:
    """The next upstream event, None at the end of the body; every failure of reading it is translated."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
    except ValueError as exc:  # a data line that is not JSON: upstream's fault, not ours
        raise Unavailable("Anthropic sent a malformed stream event") from exc
    except Exception as exc:
        _raise_translated(exc)


async def _drain(stream: anthropic.AsyncStream[RawMessageStreamEvent]) -> None:
    """Consume what follows ``message_stop`` (normally only the end of the chunked body). The generation is
    complete at that point, so a failure here only means the connection is not reused: it is not reported."""
    try:
        while await _next_event(stream) is not None:
            pass
    except Exception:  # see the docstring; trio.Cancelled is not an Exception and propagates
        pass


def _translate(translator: StreamTranslator, event: RawMessageStreamEvent) -> list[Event]:
    """The translator's events; an event missing the fields of its type is upstream's protocol error."""
    try:
        return translator.feed(event)
    except (AttributeError, TypeError) as exc:
        raise Unavailable("Anthropic sent a stream event that does not have the fields of its type") from exc


def _raise_translated(exc: Exception) -> NoReturn:
    """Raise the engine error for a library exception; anything else (ours, or a bug) is re-raised as is."""
    mapped = None if isinstance(exc, TrinferError) else translate_exception(exc)
    if mapped is None:
        raise exc
    raise mapped from exc
