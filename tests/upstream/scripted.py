"""A scripted OpenAI-compatible server on a loopback port, for the error shapes a mock trinfer never sends.

Theory of operation: a tiny HTTP/1.1 server (`tests.loopback_http`, keep-alive) run in the test's own
nursery, so the autojump clock drives every timeout. ``GET /v1/models`` answers the health probe with
``probe_status`` (200 by default: set it to 503 to fail probes) and a model list, or ``probe_body`` (raw
bytes) when set; ``probe_hang`` makes it answer nothing until the client goes away; ``close_after_answer``
drops each connection once a POST was answered, as a server closing idle keep-alive connections early does.

``POST`` requests get the next scripted `Reply`: a JSON body with a status (`completion`: a non-streaming
answer), or a ``text/event-stream`` made of chunks (`sse`), where `DROP` closes the socket mid-body and `HANG`
stops writing until the client goes away; ``before_headers`` answers nothing (`DROP`: close at once; `HANG`:
wait for the client to leave). ``content_type`` replaces the one a reply's kind has ("" sends none): raw text
steps under ``application/json`` are a JSON body that can break off. With no reply queued, a POST gets a
complete one-word answer, streamed or not as it asked.

Every POST is recorded (path, lowercased headers, decoded JSON body) so translation tests assert on what the
upstream actually received; ``disconnects`` counts connections the client closed while a reply was pending.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.daemon_harness import RunningDaemon, running_daemon
from tests.loopback_http import Dropped, ServerConnection, serve_loopback

from .processes import gateway_config

DROP = "drop"
HANG = "hang"
Step = dict[str, Any] | str  # a chunk (sent as one data: event), raw text (sent as is), DROP or HANG


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    steps: tuple[Step, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    before_headers: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
        **extra,
    }


def usage_chunk(prompt: int = 3, completion: int = 2) -> dict[str, Any]:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def sse(
    *steps: Step, done: bool = True, headers: Sequence[tuple[str, str]] = (), content_type: str | None = None
) -> Reply:
    """A streamed reply: the steps, then ``data: [DONE]`` unless ``done`` is false."""
    steps = (*steps, *(["data: [DONE]\n\n"] if done else []))
    return Reply(steps=steps, headers=tuple(headers), content_type=content_type)


def text_answer(*pieces: str, finish: str = "stop") -> Reply:
    """A complete streamed answer: a role chunk, one chunk per piece, the finish chunk, usage, [DONE]."""
    return sse(
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": piece}) for piece in pieces],
        chunk({}, finish),
        usage_chunk(3, len(pieces)),
    )


def completion(
    message: dict[str, Any] | None = None,
    finish: str | None = "stop",
    usage: tuple[int, int] | None = (3, 2),
    **choice: Any,
) -> dict[str, Any]:
    """One ``chat.completion`` object (a non-streaming answer) with a single choice."""
    body: dict[str, Any] = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **(message or {})}, "finish_reason": finish,
                     **choice}],
    }  # fmt: skip
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}
    return body


def json_answer(*pieces: str, finish: str = "stop") -> Reply:
    """A complete non-streaming answer: the pieces as the message's content."""
    return Reply(body=completion({"content": "".join(pieces)}, finish, (3, len(pieces))))


def error(status: int, message: str, **fields: Any) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None, **fields}}
    return Reply(status=status, body=body)


@dataclass
class ScriptedUpstream:
    probe_status: int = 200
    probe_body: bytes | None = None
    probe_hang: bool = False
    #: Close each connection right after a complete POST answer (keep-alive announced, then dropped idle).
    close_after_answer: bool = False
    connections: int = 0
    requests: list[Recorded] = field(default_factory=list)
    probes: int = 0
    disconnects: int = 0
    port: int = 0
    _replies: deque[Reply] = field(default_factory=deque)
    _received: trio.Event = field(default_factory=trio.Event)
    _disconnected: trio.Event = field(default_factory=trio.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reply(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    async def wait_request(self, count: int = 1) -> None:
        while len(self.requests) < count:
            self._received = trio.Event()
            await self._received.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_loopback(self, self._handle, task_status=task_status)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        http = ServerConnection(stream)
        try:
            while True:
                request = await http.read_request()
                if request is None:
                    return
                if request.method == "GET" and request.path.endswith("/models"):
                    self.probes += 1
                    await self._probe(http)
                else:
                    body = json.loads(request.body) if request.body else None
                    self.requests.append(Recorded(request.path, request.headers, body))
                    self._received.set()
                    await self._answer(http, self._replies.popleft() if self._replies else _default(body))
                    if self.close_after_answer:
                        return
                if not http.next_cycle():
                    return
        except (trio.BrokenResourceError, Dropped):
            pass
        finally:
            await stream.aclose()

    async def _probe(self, http: ServerConnection) -> None:
        if self.probe_hang:
            await self._wait_for_close(http)
        if self.probe_body is None:
            await self._json(http, Reply(status=self.probe_status, body={"object": "list", "data": []}))
            return
        await http.send_whole(self.probe_status, [("content-type", "application/json")], self.probe_body)

    async def _json(self, http: ServerConnection, reply: Reply) -> None:
        payload = json.dumps(reply.body if reply.body is not None else {}).encode()
        await http.send_whole(reply.status, [*_content_type(reply, "application/json"), *reply.headers], payload)

    async def _answer(self, http: ServerConnection, reply: Reply) -> None:
        if reply.before_headers == HANG:
            await self._wait_for_close(http)
        if reply.before_headers == DROP:
            raise Dropped
        if not reply.steps:
            await self._json(http, reply)
            return
        await http.start_response(reply.status, [*_content_type(reply, "text/event-stream"), *reply.headers])
        for step in reply.steps:
            if step == DROP:
                raise Dropped
            if step == HANG:
                await self._wait_for_close(http)
            text = step if isinstance(step, str) else f"data: {json.dumps(step)}\n\n"
            await http.send_data(text.encode())
        await http.end()

    async def _wait_for_close(self, http: ServerConnection) -> None:
        await http.wait_for_close()
        self.disconnects += 1
        self._disconnected.set()
        raise Dropped


def _default(body: Any) -> Reply:
    """The answer to a POST with no reply queued: one word, streamed if the request asked for a stream."""
    return text_answer("ok") if isinstance(body, dict) and body.get("stream") else json_answer("ok")


def _content_type(reply: Reply, default: str) -> list[tuple[str, str]]:
    content_type = default if reply.content_type is None else reply.content_type
    return [("content-type", content_type)] if content_type else []


@asynccontextmanager
async def gateway(*upstreams: ScriptedUpstream, **options: Any) -> AsyncIterator[RunningDaemon]:
    """trinfer with one ``openai`` backend whose base URLs are ``upstreams`` (probes every 5 s by default)."""
    config = gateway_config([u.base_url for u in upstreams], **{"health_interval_s": 5, **options})
    async with running_daemon(config) as d:
        yield d


def url_status(d: RunningDaemon, index: int) -> dict[str, Any]:
    """The ``index``-th base URL's entry in the ``fleet`` backend's status."""
    entry: dict[str, Any] = d.backend_status("fleet")["base_urls"][index]
    return entry
