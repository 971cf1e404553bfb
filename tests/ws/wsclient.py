"""Test helpers for the WebSocket route: trio-websocket as the client, frames as dicts.

Every helper reads frames in order and fails loudly on anything unexpected; callers guard them with
``trio.fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from tests.daemon_harness import MOCK_MODEL, RunningDaemon

TERMINAL = ("chat.completion.done", "error")


def ws_url(d: RunningDaemon) -> str:
    return d.inference_url.replace("http://", "ws://", 1) + "/v1/ws"


@asynccontextmanager
async def open_ws(
    url: str,
    *,
    subprotocols: list[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    **options: Any,
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client socket to ``url`` whose TCP stream this helper owns and always closes.

    ``options`` go to ``trio_websocket.wrap_client_stream`` (e.g. ``message_queue_size``).

    Why not ``trio_websocket.open_websocket_url``: its client never closes its TCP socket after a rejected
    upgrade, nor after a close the server started (it returns from ``aclose`` before closing the stream), so
    every such test leaked a socket (a ``ResourceWarning`` at garbage collection). A refused upgrade raises
    ``ConnectionRejected`` itself, as ``open_websocket_url`` does.
    """
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                conn = await wrap_client_stream(
                    nursery,
                    stream,
                    f"{parts.hostname}:{parts.port}",
                    parts.path or "/",
                    subprotocols=subprotocols,
                    extra_headers=extra_headers,
                    **options,
                )
                try:
                    yield conn
                finally:
                    await conn.aclose()
        except BaseExceptionGroup as group:
            raise _sole_error(group) from None


def _sole_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception in (nested) single-exception groups, so tests see the error itself."""
    while len(group.exceptions) == 1 and isinstance(group.exceptions[0], BaseExceptionGroup):
        group = group.exceptions[0]
    return group.exceptions[0] if len(group.exceptions) == 1 else group


@asynccontextmanager
async def connect(
    d: RunningDaemon, *, key: str | None = None, **kwargs: Any
) -> AsyncIterator[WebSocketConnection]:
    """A socket to ``d`` sending ``Authorization: Bearer <key>`` when the daemon has keys (or ``key`` is given)."""
    api_key = key if key is not None else (d.api_key if d.daemon.services.api_keys.enabled else None)
    headers = [(b"Authorization", f"Bearer {api_key}".encode())] if api_key else None
    async with open_ws(ws_url(d), extra_headers=headers, **kwargs) as conn:
        yield conn


def chat_body(content: str = "hello there", *, model: str = MOCK_MODEL, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def create(frame_id: str, content: str = "hello there", **extra: Any) -> str:
    return json.dumps({"type": "chat.completion.create", "id": frame_id, "request": chat_body(content, **extra)})


def cancel(frame_id: str) -> str:
    return json.dumps({"type": "chat.completion.cancel", "id": frame_id})


async def next_frame(conn: WebSocketConnection) -> dict[str, Any]:
    message = await conn.get_message()
    assert isinstance(message, str), f"server sent a binary frame: {message!r}"
    frame: dict[str, Any] = json.loads(message)
    return frame


async def until_terminal(conn: WebSocketConnection, *ids: str) -> dict[str, list[dict[str, Any]]]:
    """Read frames until each of ``ids`` got its terminal frame; every frame read, grouped by id, in order.

    A frame for an id not in ``ids``, or after an id's terminal frame, fails the test.
    """
    frames: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    open_ids = set(ids)
    while open_ids:
        frame = await next_frame(conn)
        assert frame["id"] in open_ids, f"unexpected frame {frame}"
        frames[frame["id"]].append(frame)
        if frame["type"] in TERMINAL:
            open_ids.discard(frame["id"])
    return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    """The content the chunk frames of one request carry, joined."""
    return "".join(
        choice["delta"].get("content") or ""
        for f in frames
        if f["type"] == "chat.completion.chunk"
        for choice in f["chunk"]["choices"]
    )
