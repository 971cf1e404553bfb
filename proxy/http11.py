"""The HTTP/1.1 protocol of every listener: hypercorn's h11 protocol, narrowed to what trinfer serves.

trinfer speaks HTTP/1.1 only (what every OpenAI SDK speaks by default). hypercorn would switch a cleartext
connection to HTTP/2 on a prior-knowledge preface (``PRI * HTTP/2.0``) or an ``Upgrade: h2c`` request, and its
HTTP/2 code lets a client buffer whole responses in the server and can raise out of the connection; neither
switch happens here:

- a prior-knowledge preface gets ``505 HTTP Version Not Supported`` and the connection closes;
- ``Upgrade: h2c`` is ignored (RFC 9110 section 7.8 lets a server do so): the request is served over HTTP/1.1.

It also refuses request framings that let a request hide inside another (request smuggling), with 400 and a
close before any of the body is read: ``Content-Length`` together with ``Transfer-Encoding`` (h11 would frame
by the latter), and ``Transfer-Encoding`` on an HTTP/1.0 request (which has no chunked coding).

Every status line carries its reason phrase (``HTTP/1.1 404 Not Found``), and the errors the HTTP parser
answers itself (400 unparsable request, 431 headers too large, 501 unsupported transfer coding) carry the
OpenAI error body like every other error. WebSocket upgrades get `proxy.ws_stream.FailingWSStream`.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from itertools import chain
from typing import cast

import h11
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.events import Body, EndBody, Request, Response, StreamClosed
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import STREAM_ID, H11Protocol, H11WSConnection
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.typing import H11SendableEvent

from compat.errors import HTTPProblem

from .errors import ErrorRenderers
from .ws_stream import FailingWSStream

#: What a client is told for each status the HTTP parser can answer on its own (any other: the reason phrase).
PARSER_ERRORS = {
    400: ("The request is not valid HTTP/1.1", "bad_request"),
    431: ("The request's header section is too large", "headers_too_large"),
    501: ("Only the chunked transfer coding is supported", "not_implemented"),
}


class RefusedRequest(Exception):
    """A request line and headers this server will not serve; answered with ``problem``, then closed."""

    def __init__(self, problem: HTTPProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def request_refusal(request: h11.Request) -> HTTPProblem | None:
    """Why ``request`` must be refused before its body is read (HTTP/2 preface, ambiguous framing), or None."""
    if request.http_version == b"2.0":
        return HTTPProblem(
            "HTTP/2 is not supported: this server speaks HTTP/1.1 only",
            status=505,
            code="http_version_not_supported",
        )
    names = {name for name, _ in request.headers}  # h11 lower-cases header names
    if b"transfer-encoding" in names and b"content-length" in names:
        return HTTPProblem(
            "A request may not carry both Content-Length and Transfer-Encoding",
            status=400,
            code="ambiguous_framing",
        )
    if b"transfer-encoding" in names and request.http_version == b"1.0":
        return HTTPProblem(
            "Transfer-Encoding is not allowed in an HTTP/1.0 request", status=400, code="bad_request"
        )
    return None


def reason(status: int) -> bytes:
    """The standard reason phrase of ``status`` (h11 sends an empty one), or none for an unknown status."""
    phrase = _REASONS.get(status)
    if phrase is None:
        try:
            phrase = _REASONS[status] = HTTPStatus(status).phrase.encode()
        except ValueError:
            return b""
    return phrase


_REASONS: dict[int, bytes] = {}


def with_reason(event: h11.Response | h11.InformationalResponse) -> h11.Response | h11.InformationalResponse:
    """``event`` with the standard reason phrase for its status when it has none (h11 sends an empty one)."""
    phrase = reason(event.status_code)
    if event.reason or not phrase:
        return event
    return type(event)(status_code=event.status_code, headers=event.headers.raw_items(), reason=phrase)


#: The ASGI scope key of a request's `Hangup` (set by `HangupHTTPStream`).
HANGUP_KEY = "trinfer.hangup"


class Hangup:
    """What an app sets to learn that the client went away: ``on_hangup`` is called (if set) when the
    connection closes, before hypercorn queues ``http.disconnect`` - so no task has to wait on ``receive`` for
    it. It is called after a complete response too (the stream closes then as well)."""

    __slots__ = ("on_hangup",)

    def __init__(self) -> None:
        self.on_hangup: Callable[[], None] | None = None


class HangupHTTPStream(HTTPStream):
    """hypercorn's HTTP stream, with a `Hangup` in every request's scope (``scope[HANGUP_KEY]``)."""

    _hangup: Hangup | None = None

    async def handle(self, event: StreamEvent) -> None:
        if type(event) is StreamClosed and self._hangup is not None and not self.closed:
            on_hangup = self._hangup.on_hangup
            if on_hangup is not None:
                on_hangup()
        await super().handle(event)
        if type(event) is Request and not self.closed:
            # (the app was started with start_soon: it has not run yet, and finds the key in its scope)
            self._hangup = Hangup()
            cast(dict[str, object], self.scope)[HANGUP_KEY] = self._hangup


class Http11Protocol(H11Protocol):
    """hypercorn's h11 protocol without the switches to HTTP/2, with the refusals of the module docstring."""

    #: A response's status line and headers, not yet written (see `stream_send`).
    _held = b""

    async def handle(self, event: Event) -> None:
        try:
            await super().handle(event)
        except RefusedRequest as refused:
            await self._send_problem(refused.problem)
            await self.send(Closed())

    async def _check_protocol(self, event: h11.Request) -> None:
        # Replaces hypercorn's check, which raises into its HTTP/2 protocol for a preface or an h2c upgrade.
        problem = request_refusal(event)
        if problem is not None:
            raise RefusedRequest(problem)

    async def _create_stream(self, request: h11.Request) -> None:
        # hypercorn's, with `FailingWSStream` for WebSocket upgrades.
        headers = {name: value.strip().lower() for name, value in request.headers}  # h11 lower-cases names
        tokens = {token.strip() for token in headers.get(b"connection", b"").split(b",")}
        upgrade = b"upgrade" in tokens and headers.get(b"upgrade") == b"websocket" and request.method == b"GET"
        args = (self.app, self.config, self.context, self.task_group, self.ssl, self.client, self.server)
        if upgrade:
            self.stream = FailingWSStream(*args, self.stream_send, STREAM_ID)
            self.connection = H11WSConnection(cast(h11.Connection, self.connection))
        else:
            self.stream = HangupHTTPStream(*args, self.stream_send, STREAM_ID)
        await self.stream.handle(
            Request(
                stream_id=STREAM_ID,
                headers=request.headers.raw_items() if self.config.h11_pass_raw_headers else list(request.headers),
                http_version=request.http_version.decode(),
                method=request.method.decode("ascii").upper(),
                raw_path=request.target,
                state=self.connection_state,
            )
        )
        self.keep_alive_requests += 1
        await self.context.mark_request()

    async def stream_send(self, event: StreamEvent) -> None:
        """hypercorn's, except that a response's status line and headers are held until its first body piece
        (or its end) and written together with it: one socket write instead of two for a whole JSON answer
        (an ASGI app sends ``http.response.start`` and its first body message back to back; an SSE reply's
        first piece is the generation's first event, already in hand). The status line carries its reason."""
        kind = type(event)
        if kind is Response and cast(Response, event).status_code >= 200:
            response = cast(Response, event)
            headers = list(chain(response.headers, self.config.response_headers("h11")))
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._held += self._h11_bytes(
                h11.Response(
                    headers=headers, status_code=response.status_code, reason=reason(response.status_code)
                )
            )
            return
        if kind is Body or kind is EndBody:
            data = self._h11_bytes(h11.Data(data=cast(Body, event).data) if kind is Body else h11.EndOfMessage())
            held, self._held = self._held, b""
            if held or data:
                await self.send(RawData(data=held + data))
            return
        await self._release_held()
        await super().stream_send(event)

    async def _release_held(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            await self.send(RawData(data=held))

    def _h11_bytes(self, event: H11SendableEvent) -> bytes:
        """What h11 writes for ``event``: nothing after the peer broke the protocol (hypercorn's rule)."""
        try:
            return self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return b""

    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        # `type` first: h11's events derive from an ABC, whose isinstance is slow, and most are body data.
        if type(event) is not h11.Data and isinstance(event, h11.Response | h11.InformationalResponse):
            event = with_reason(event)
        await self._release_held()
        await super()._send_h11_event(event)

    async def _send_error_response(self, status_code: int) -> None:
        message, code = PARSER_ERRORS.get(status_code, (HTTPStatus(status_code).phrase, None))
        await self._send_problem(HTTPProblem(message, status=status_code, code=code))

    async def _send_problem(self, problem: HTTPProblem) -> None:
        """Answer ``problem`` with the OpenAI error body and ``Connection: close`` (no request id: no request).

        OpenAI's body whatever the path: these refusals come before routing, often with no usable path at all.
        """
        error = ErrorRenderers().render(problem, "-", "/")
        raw = error.raw_headers()
        raw += [(b"content-length", str(len(error.body)).encode()), (b"connection", b"close")]
        await self._send_h11_event(
            h11.Response(status_code=error.status, headers=list(chain(raw, self.config.response_headers("h11"))))
        )
        await self._send_h11_event(h11.Data(data=error.body))
        await self._send_h11_event(h11.EndOfMessage())
