"""`OpenAIUpstreamBackend`: any OpenAI-compatible server (vLLM, SGLang, llama-server, another trinfer, a
hosted API) behind the engine contract, spread over several base URLs.

HTTP client: our own HTTP/1.1 client on trio streams (`client`, its parser `http1`), keep-alive connections
kept per base URL (`client.Connections`). The upstream is a configured server speaking plain HTTP/1.1, so
keep-alive, chunked and ``Content-Length`` framing, TLS and timeouts are all a client needs - connecting
(``connect_timeout_s``) and every silence between two bytes (``read_timeout_s``) bounded separately, exactly
the two limits the config exposes, and a streamed body closed early (``aclose``) dropping the connection,
which is what cancellation needs. A generic client costs far more per request on a hop that does little
else: client-side CPU per keep-alive POST with a small JSON answer measured ~320-350 us through httpcore's
connections, ~190-200 us with h11 driven directly, ~75-95 us with this client (``bench/client_cpu.py``). The
official ``openai`` SDK adds still more on top of httpx - retries, response models and its own error classes -
between us and the status, headers and raw bytes this adapter translates.

One generation (`_generate`) is an attempt loop: pick the healthy base URL with the fewest outstanding
requests, ask it for the chat completion, translate its answer and send the engine events on. The upstream is
asked to stream only when the client streams (`ResolvedV2.stream`); a client that waits for the whole answer
gets it from one ``chat.completion`` object, which costs the upstream and trinfer less than a stream of
chunks. The answer is read by its Content-Type, not by what was asked: ``text/event-stream`` is relayed
chunk by chunk as it arrives (`_relay`), JSON is read whole and then translated (`_read_completion`); a
server that names neither is read as what was asked. A failure that makes the URL unfit (see `errors`) marks
it down and - *only while no event has been sent*, i.e. before any byte could reach the client - moves the
request to the next healthy URL it has not tried. A JSON answer's events are sent only once all of its body
has arrived, so a reset while reading it still moves the request on. After the first event nothing is
retried: the failure ends the stream (the daemon sends the in-band error event).

Leaving an attempt for any reason - done, failed, or cancelled because the client went away in any phase -
closes the upstream response at once, in a shielded close bounded by `CLOSE_TIMEOUT_S`: the connection is
dropped (not returned to the pool mid-body), so the upstream sees the disconnect and stops generating.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

import trio

from ..backend import Backend
from ..errors import NotReady, Unavailable, raw_prompt_refused
from ..types import (
    BackendCapabilities,
    Done,
    EmbedResolved,
    EmbedResult,
    Event,
    Resolved,
    ResolvedV2,
    Text,
    Token,
)
from .client import CLOSE_TIMEOUT_S, TRANSPORT_ERRORS, Connections, StaleConnection, Timeouts, UpstreamResponse
from .errors import Failure, Kind, status_failure, transport_failure
from .options import OPTION_KEYS, UpstreamOptions, parse_options, read_api_key
from .pool import Pool, UpstreamURL
from .translate_request import chat_body, embeddings_body
from .translate_stream import DONE_SENTINEL, ChunkTranslator, SseDecoder, completion_events

T = TypeVar("T")

#: How many idle keep-alive connections each base URL's pool keeps.
KEEPALIVE_CONNECTIONS = 64
#: Idle keep-alive connections are dropped after this long: less than the 5 s idle timeout of uvicorn
#: (vLLM, SGLang, llama-cpp-python) and hypercorn (trinfer), so we never reuse one the server is closing.
KEEPALIVE_EXPIRY_S = 4.0
#: After ``[DONE]``, how long the end of the body is waited for (to keep the connection for reuse).
DRAIN_S = 1.0
#: The most of an error body that is read (error bodies are small; a gateway's HTML page need not be whole).
MAX_ERROR_BODY = 64 * 1024


class OpenAIUpstreamBackend(Backend):
    """Several OpenAI-compatible base URLs as one backend. Options: see `adapters.openai_upstream.options`."""

    name = "openai"
    option_keys = OPTION_KEYS

    def __init__(self, options: UpstreamOptions) -> None:
        self.options = options
        self._pool: Pool | None = None
        self._stopping = False
        self._active = 0
        self._cancelled = 0
        self._failovers = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        return cls(parse_options(options))

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def boot(self) -> None:
        """Read the key, make one HTTP client per base URL, and return once one URL passed its probe.

        Probes are retried every ``health_interval_s``; the daemon's ``ready_timeout_s`` bounds the wait.
        """
        key = read_api_key(self.options)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        https = any(url.startswith("https://") for url in self.options.base_urls)
        # Loading the trust store is blocking file I/O: done in a worker thread, and only when a URL needs it.
        tls = await trio.to_thread.run_sync(ssl.create_default_context) if https else _PLAIN_HTTP
        opts = self.options
        timeouts = Timeouts(connect=opts.connect_timeout_s, read=opts.read_timeout_s, write=opts.read_timeout_s)
        urls = [UpstreamURL(base, self._transport(tls), headers, timeouts) for base in opts.base_urls]
        self._pool = Pool(urls)
        await self._pool.probe_until_healthy(self.options.health_interval_s)

    def _transport(self, tls: ssl.SSLContext) -> Connections:
        # No proxies from HTTP(S)_PROXY variables around the daemon: the upstream is reached as configured.
        # No connection limit: admission (``active``) bounds concurrency; the pool must not add a queue.
        return Connections(
            ssl_context=tls, max_keepalive_connections=KEEPALIVE_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY_S
        )

    async def maintain(self) -> None:
        """Probe every base URL each ``health_interval_s`` while the backend serves (a down URL comes back)."""
        if self._pool is not None:
            await self._pool.keep_probing(self.options.health_interval_s)

    def ready(self) -> bool:
        """Booted, not stopping, and at least one base URL healthy (else requests get 503 at once)."""
        return self._pool is not None and not self._stopping and self._pool.any_healthy()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the contract takes a deadline
        """Close every base URL's connection pool within ``timeout`` seconds."""
        self._stopping = True
        if self._pool is None:
            return
        with trio.move_on_after(timeout):
            for url in self._pool.urls:
                await url.transport.aclose()

    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            v2=True, vision=True, tools=True, json_schema=True, thinking=True, embed=self.options.embed,
            accelerator="remote",
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        return {
            "base_urls": self._pool.status() if self._pool is not None else [],
            "upstream_model": self.options.upstream_model,
            "auth": self.options.auth_source(),
            "embed": self.options.embed,
            "connect_timeout_s": self.options.connect_timeout_s,
            "read_timeout_s": self.options.read_timeout_s,
            "health_interval_s": self.options.health_interval_s,
            "active": self._active,
            "cancelled": self._cancelled,
            "failovers": self._failovers,
        }

    # --- generation -----------------------------------------------------------------------------------------

    async def generate(self, req: Resolved, send: trio.MemorySendChannel[Event]) -> None:
        """v1: the same upstream stream, answer text sent as `Token`s (reasoning is not part of v1)."""
        await self._generate(ResolvedV2.from_v1(req), send, v1=True)

    async def generate_v2(self, req: ResolvedV2, send: trio.MemorySendChannel[Event]) -> None:
        await self._generate(req, send, v1=False)

    async def _generate(self, req: ResolvedV2, send: trio.MemorySendChannel[Event], *, v1: bool) -> None:
        if req.prompt is not None:  # DESIGN.md section 8: a backend that cannot take raw text answers 400
            raise raw_prompt_refused(req.model)
        pool = self._require_pool()
        body = _encode(chat_body(req, self.options.model_for(req.model)))
        self._active += 1
        try:
            sent = _Sent(send, v1)
            tried: set[UpstreamURL] = set()
            while True:
                url = self._next_url(pool, tried)
                try:
                    await self._answer_once(pool, url, body, sent, stream=req.stream)
                    return
                except Failure as failure:
                    self._after_failure(pool, url, failure, tried, retry_allowed=not sent.any)
        except trio.Cancelled:
            self._cancelled += 1
            raise
        finally:
            self._active -= 1

    def _next_url(self, pool: Pool, tried: set[UpstreamURL]) -> UpstreamURL:
        url = pool.pick(tried)
        if url is None:
            raise Unavailable(
                "no upstream server for this model is healthy right now", status=503, code="backend_unavailable"
            )
        tried.add(url)
        return url

    def _after_failure(
        self, pool: Pool, url: UpstreamURL, failure: Failure, tried: set[UpstreamURL], *, retry_allowed: bool
    ) -> None:
        """Record ``failure`` on ``url``; return to try another URL, or raise the client's error."""
        if failure.marks_down:
            pool.mark_down(url, failure.reason)
        elif failure.kind is Kind.KEY:
            pool.note_refused_key(url, failure.reason)
        elif failure.kind is not Kind.REFUSED:
            pool.note_error(url, failure.reason)
        if not (failure.failover and retry_allowed and pool.has_candidate(tried)):
            raise failure.error from failure.__cause__
        self._failovers += 1

    async def _answer_once(self, pool: Pool, url: UpstreamURL, body: bytes, sent: _Sent, *, stream: bool) -> None:
        """One attempt on ``url``: send its answer's events into ``sent``; raise `Failure` when it fails.

        ``stream`` is what was asked of the upstream: how to read an answer whose Content-Type says nothing.
        """
        with pool.lease(url):
            response = await _open(url, "/chat/completions", body)
            try:
                if _is_event_stream(response, asked=stream):
                    await _relay(response, sent)
                else:
                    await sent.many(await _read_completion(response))
            finally:
                await _close(response)

    async def embed(self, req: EmbedResolved) -> EmbedResult:
        pool = self._require_pool()
        if not self.options.embed:
            return await super().embed(req)
        body = _encode(embeddings_body(req, self.options.model_for(req.model)))
        tried: set[UpstreamURL] = set()
        while True:
            url = self._next_url(pool, tried)
            try:
                with pool.lease(url):
                    response = await _open(url, "/embeddings", body)
                    try:
                        payload = await _read_json(response)
                    finally:
                        await _close(response)
                return _embed_result(payload, len(req.inputs))
            except Failure as failure:
                self._after_failure(pool, url, failure, tried, retry_allowed=True)

    def _require_pool(self) -> Pool:
        if self._pool is None or self._stopping:
            raise NotReady("the openai backend is not ready")
        return self._pool


class _Sent:
    """The send side of one generation, remembering whether anything was sent (then no failover).

    The events of one upstream read go into the channel without yielding while it has room, so the consumer
    wakes once for all of them (it takes what is buffered as one batch) instead of once per event; the
    upstream read that follows is the checkpoint. A full channel still waits, which is the backpressure.
    """

    def __init__(self, send: trio.MemorySendChannel[Event], v1: bool) -> None:
        self._send = send
        self._v1 = v1
        self.any = False

    async def many(self, events: list[Event]) -> None:
        for event in events:
            if self._v1 and not isinstance(event, Done):
                if not isinstance(event, Text):
                    continue  # reasoning is not part of a v1 answer
                event = Token(event.text)
            self.any = True
            try:
                self._send.send_nowait(event)
            except trio.WouldBlock:
                await self._send.send(event)


def _translate(translate: Callable[[T], list[Event]], data: T) -> list[Event]:
    """``translate(data)``, the upstream's malformed answer (`Unavailable`) made a `Failure` of the attempt."""
    try:
        return translate(data)
    except Unavailable as exc:
        raise Failure(Kind.FAILED, exc.message, exc) from exc


def _encode(body: dict[str, Any]) -> bytes:
    return _ENCODER.encode(body).encode("utf-8")


#: ``json.dumps`` with these options makes a new encoder per call; this one is made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


async def _open(url: UpstreamURL, path: str, body: bytes) -> UpstreamResponse:
    """POST ``body`` to ``url``; the 2xx response, its body still to be read; every failure is a `Failure`."""
    try:
        try:
            response = await _send(url, path, body)
        except _STALE_CONNECTION:
            # A kept-alive connection the server had closed (or was closing) as we reused it: the pool drops
            # it, and the request goes once more, on a fresh connection, before the URL is judged.
            response = await _send(url, path, body)
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(exc) from exc
    if 200 <= response.status_code < 300:
        return response
    try:
        error_body = await _read_some(response, MAX_ERROR_BODY)
    finally:
        await _close(response)
    raise status_failure(response.status_code, response.headers, error_body)


async def _send(url: UpstreamURL, path: str, body: bytes) -> UpstreamResponse:
    return await url.send("POST", path, body, _JSON_HEADERS)


async def _close(response: UpstreamResponse) -> None:
    """Close ``response``, shielded and bounded: a cancelled request still drops its upstream connection (a
    body that was not read to its end is never put back in the pool), so the upstream stops at once."""
    with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
        await response.aclose()


async def _relay(response: UpstreamResponse, sent: _Sent) -> None:
    """Translate the SSE body of ``response`` into events on ``sent``, up to and including `Done`.

    After ``[DONE]`` the rest of the body (normally only its chunked end) is read for at most `DRAIN_S`, so
    the connection can be reused; a failure there is not reported, the answer being complete. A body that
    ends after a ``finish_reason`` but without ``[DONE]`` is complete too; one that ends before is `Failure`.
    """
    translator = ChunkTranslator()
    decoder = SseDecoder()
    ended = False
    with trio.CancelScope() as drain:
        try:
            async for piece in response.aiter_bytes():
                if ended:
                    continue
                for event in decoder.feed(piece):
                    if event.data == DONE_SENTINEL:
                        ended = True
                        await sent.many(translator.finish())
                        drain.deadline = trio.current_time() + DRAIN_S
                        break
                    await sent.many(_translate(translator.feed_data, event.data))
        except TRANSPORT_ERRORS as exc:
            if not ended:
                raise transport_failure(exc).cut() from exc
    if ended:
        return
    if not translator.finished:
        raise Failure(
            Kind.CUT,
            "the stream ended before the answer was complete",
            Unavailable("the upstream server ended the stream before the answer was complete"),
        )
    await sent.many(translator.finish())


def _is_event_stream(response: UpstreamResponse, *, asked: bool) -> bool:
    """True when ``response`` is read as an SSE stream: its Content-Type says ``text/event-stream``; false when
    it says JSON (``application/json`` or a ``+json`` type); when it says neither, what was ``asked``."""
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == "text/event-stream":
        return True
    if media == "application/json" or media.endswith("+json"):
        return False
    return asked


async def _read_completion(response: UpstreamResponse) -> list[Event]:
    """Every event of the JSON answer in ``response`` (one ``chat.completion`` object), through `Done`.

    The whole body is read first (each wait for its bytes bounded by ``read_timeout_s``, like a stream's), so
    nothing is sent before it has all arrived: a reset or an early end while reading it fails like one before
    the answer's headers (the URL is marked down, another URL may take the request), a read timeout is 502.
    """
    try:
        data = await response.aread()
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(exc) from exc
    return _translate(completion_events, data)


async def _read_some(response: UpstreamResponse, limit: int) -> bytes:
    data = b""
    try:
        async for piece in response.aiter_bytes():
            data += piece
            if len(data) >= limit:
                break
    except TRANSPORT_ERRORS:
        pass  # the status alone decides; the body was only for its message
    return data[:limit]


async def _read_json(response: UpstreamResponse) -> Any:
    try:
        data = await response.aread()
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(exc) from exc
    try:
        return json.loads(data)
    except ValueError:
        raise Failure(
            Kind.FAILED, "a body that is not JSON", Unavailable("the upstream server sent a body that is not JSON")
        ) from None


def _embed_result(payload: Any, count: int) -> EmbedResult:
    """The vectors of an upstream ``list`` of embeddings, in input order, checked to be one per input."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise Unavailable(f"the upstream server did not return {count} embeddings")
    ordered = sorted(data, key=lambda item: item.get("index", 0) if isinstance(item, dict) else 0)
    vectors: list[tuple[float, ...]] = []
    for item in ordered:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise Unavailable("the upstream server returned an embedding that is not an array of numbers")
        vectors.append(tuple(float(x) for x in vector))
    usage = payload.get("usage") if isinstance(payload, dict) else None
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    tokens = prompt_tokens if isinstance(prompt_tokens, int) and not isinstance(prompt_tokens, bool) else 0
    return EmbedResult(vectors=tuple(vectors), prompt_tokens=max(0, tokens))


#: The TLS context given to clients whose base URL is plain http: never used, and cheap to make (no trust store).
_PLAIN_HTTP = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
#: A reused connection the server had closed before any answer arrived (tried once more on a new one).
_STALE_CONNECTION = StaleConnection
_JSON_HEADERS = ((b"Content-Type", b"application/json"), (b"Accept", b"application/json, text/event-stream"))
