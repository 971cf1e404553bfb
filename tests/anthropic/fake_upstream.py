"""A fake Anthropic Messages API on a loopback port, speaking the real wire format.

Theory of operation: a tiny HTTP/1.1 server (`tests.loopback_http`; one request per connection with
``Connection: close`` unless ``keep_alive``) answers ``POST /v1/messages`` with the next scripted `Reply` from
its queue, and ``POST /v1/messages/count_tokens`` with the queued reply or else `count_prompt_words` of the
body.
A reply is either a JSON body with a status (the non-streaming API and every error response) or a
``text/event-stream`` made of steps:
`Sse` events written exactly as Anthropic writes them (``event: NAME`` / ``data: JSON`` / blank line),
`Drop` (close the socket mid-body, no terminating chunk) and `Hang` (stop writing and wait for the client to
close the connection). `Reply.hang_before_headers` makes the server read the request and never answer.

The server records every request it received (headers lowercased, JSON body decoded), so translation tests
assert on what upstream actually saw, and counts the connections the client closed while the server was
still waiting to write (``disconnects``), so cancellation tests can prove the upstream stream was closed.
Both ``x-api-key`` and ``Authorization: Bearer`` are accepted; any other credential gets Anthropic's 401.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.loopback_http import Dropped, Request, ServerConnection, serve_loopback

DEFAULT_KEY = "sk-ant-test-0123456789"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


@dataclass(frozen=True)
class Sse:
    """One server-sent event: ``event: <name>`` and ``data: <json>`` (a str is written as it is)."""

    event: str
    data: dict[str, Any] | str


@dataclass(frozen=True)
class Drop:
    """Close the connection abruptly in the middle of the body."""


@dataclass(frozen=True)
class Hang:
    """Stop writing and wait until the client closes the connection."""


Step = Sse | Drop | Hang


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a JSON body, or an SSE stream when ``steps`` is given."""

    status: int = 200
    body: dict[str, Any] | None = None
    steps: tuple[Step, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    hang_before_headers: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeMessagesAPI:
    """The scripted server. Queue replies with `reply`, start it with ``await nursery.start(fake.serve)``."""

    api_key: str = DEFAULT_KEY
    #: Keep connections open between requests (as Anthropic does) instead of ``Connection: close``.
    keep_alive: bool = False
    #: Answers requests when no scripted reply is queued (e.g. `echo_model.echo_reply`); None: a 500.
    responder: Callable[[RecordedRequest], Reply] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: int = 0
    idle_closes: int = 0
    port: int = 0
    _replies: deque[Reply] = field(default_factory=deque)
    _disconnect_event: trio.Event = field(default_factory=trio.Event)
    _idle_close_event: trio.Event = field(default_factory=trio.Event)
    _request_event: trio.Event = field(default_factory=trio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reply(self, *replies: Reply) -> None:
        """Queue the answers to the next requests, in order."""
        self._replies.extend(replies)

    async def wait_disconnected(self) -> None:
        """Return once the client has closed at least one connection the server was still writing to."""
        await self._disconnect_event.wait()

    async def wait_request(self) -> None:
        """Return once at least one request has been received."""
        await self._request_event.wait()

    async def wait_idle_closed(self) -> None:
        """Return once the client has closed a kept-alive connection between requests (keep_alive mode)."""
        await self._idle_close_event.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_loopback(self, self._handle, task_status=task_status)

    # --- connection handling ----------------------------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        http = ServerConnection(stream)
        try:
            while True:
                request = await http.read_request()
                if request is None:
                    if self.keep_alive and self.requests:
                        self.idle_closes += 1  # the client closed a pooled, idle connection
                        self._idle_close_event.set()
                    return
                await self._answer(http, self._record(request))
                if not http.next_cycle():
                    return
        except trio.BrokenResourceError:
            self._record_disconnect()  # the client closed the connection while we were writing
        except Dropped:
            pass
        finally:
            await stream.aclose()

    def _record(self, request: Request) -> RecordedRequest:
        body = json.loads(request.body) if request.body else {}
        recorded = RecordedRequest(request.method, request.path, request.headers, body)
        self.requests.append(recorded)
        self._request_event.set()
        return recorded

    def _authorized(self, request: RecordedRequest) -> bool:
        return request.headers.get("x-api-key") == self.api_key or (
            request.headers.get("authorization") == f"Bearer {self.api_key}"
        )

    async def _answer(self, http: ServerConnection, request: RecordedRequest) -> None:
        if request.method != "POST" or request.path not in ("/v1/messages", COUNT_TOKENS_PATH):
            reply = error_reply(404, "not_found_error", f"no route {request.method} {request.path}")
        elif not self._authorized(request):
            reply = error_reply(401, "authentication_error", "invalid x-api-key")
        elif request.path == COUNT_TOKENS_PATH and not self._replies:
            reply = Reply(body={"input_tokens": count_prompt_words(request.body)})
        elif self._replies:
            reply = self._replies.popleft()
        elif self.responder is not None:
            reply = self.responder(request)
        else:
            reply = error_reply(500, "api_error", "fake upstream: no reply scripted for this request")
        if reply.hang_before_headers:
            await self._wait_for_close(http)
        streaming = bool(reply.steps)
        headers = [
            *([] if self.keep_alive else [("connection", "close")]),
            ("request-id", f"req_fake_{len(self.requests)}"),
            ("content-type", "text/event-stream" if streaming else "application/json"),
            *reply.headers,
        ]
        if not streaming:
            payload = json.dumps(reply.body if reply.body is not None else {}).encode()
            await http.send_whole(reply.status, headers, payload)
            return
        await http.start_response(reply.status, headers)
        for step in reply.steps:
            if isinstance(step, Sse):
                data = step.data if isinstance(step.data, str) else json.dumps(step.data)
                await http.send_data(f"event: {step.event}\ndata: {data}\n\n".encode())
            elif isinstance(step, Drop):
                raise Dropped
            else:
                await self._wait_for_close(http)
        await http.end()

    async def _wait_for_close(self, http: ServerConnection) -> None:
        """Block until the peer closes its side, record the disconnect, and end the connection."""
        await http.wait_for_close()
        self._record_disconnect()
        raise Dropped

    def _record_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnect_event.set()


# --- reply builders: the shapes Anthropic really sends ------------------------------------------------------


def count_prompt_words(body: dict[str, Any]) -> int:
    """The fake's ``count_tokens`` answer: the words of the system prompt, every text block and every tool's
    name and description (a stand-in tokenizer that still sees everything the prompt holds)."""

    def texts(content: Any) -> list[str]:
        if isinstance(content, str):
            return [content]
        return [block.get("text", "") for block in content if block.get("type") == "text"]

    found = texts(body.get("system", "")) + [t for m in body.get("messages", []) for t in texts(m["content"])]
    found += [f"{tool['name']} {tool.get('description', '')}" for tool in body.get("tools", [])]
    return sum(len(text.split()) for text in found)


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_reply(status: int, error_type: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> Reply:
    return Reply(status=status, body=error_body(error_type, message), headers=tuple(headers))


def message_start(model: str = "claude-fake-1", input_tokens: int = 11, **usage: int) -> Sse:
    return Sse(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_fake_01",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1, **usage},
            },
        },
    )


def text_block(index: int, pieces: Iterable[str]) -> list[Step]:
    steps: list[Step] = [
        Sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        ),
        Sse("ping", {"type": "ping"}),
    ]
    steps += [
        Sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
        )
        for piece in pieces
    ]
    steps.append(Sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return steps


def thinking_block(index: int, pieces: Iterable[str], signature: str = "c2ln") -> list[Step]:
    """A thinking block as Anthropic streams it: an empty start, the text in pieces, its signature last."""
    steps: list[Step] = [
        Sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        )
    ]
    steps += [
        Sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "thinking_delta", "thinking": piece},
            },
        )
        for piece in pieces
    ]
    steps.append(
        Sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "signature_delta", "signature": signature},
            },
        )
    )
    steps.append(Sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return steps


def redacted_thinking_block(index: int, data: str) -> list[Step]:
    """Reasoning Anthropic returns encrypted: the whole block in its start event, no deltas."""
    return [
        Sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "redacted_thinking", "data": data},
            },
        ),
        Sse("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def tool_block(index: int, tool_id: str, name: str, json_pieces: Iterable[str]) -> list[Step]:
    steps: list[Step] = [
        Sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
            },
        )
    ]
    steps += [
        Sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            },
        )
        for piece in json_pieces
    ]
    steps.append(Sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return steps


def message_end(
    stop_reason: str = "end_turn", output_tokens: int = 5, stop_sequence: str | None = None
) -> list[Step]:
    return [
        Sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        Sse("message_stop", {"type": "message_stop"}),
    ]


def stream_reply(*steps: Step | list[Step], headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """An SSE reply from steps and lists of steps (as the builders above return them)."""
    flat: list[Step] = []
    for step in steps:
        flat.extend(step if isinstance(step, list) else [step])
    return Reply(steps=tuple(flat), headers=tuple(headers))


def text_reply(
    pieces: Iterable[str],
    *,
    stop_reason: str = "end_turn",
    input_tokens: int = 11,
    output_tokens: int = 5,
    stop_sequence: str | None = None,
) -> Reply:
    """A complete, successful text stream."""
    return stream_reply(
        message_start(input_tokens=input_tokens),
        text_block(0, pieces),
        message_end(stop_reason, output_tokens, stop_sequence),
    )


def error_event(error_type: str, message: str) -> Sse:
    """The in-stream error event Anthropic sends after a 200 (e.g. ``overloaded_error``)."""
    return Sse("error", error_body(error_type, message))
