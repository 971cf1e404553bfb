"""Test helpers for the WebSocket route: trio-websocket as the client, frames as dicts.

Every helper reads frames in order and fails loudly on anything unexpected; callers guard them with
``trio.fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from trio_websocket import WebSocketConnection, open_websocket_url

from tests.daemon_harness import MOCK_MODEL, RunningDaemon

TERMINAL = ("chat.completion.done", "error")


def ws_url(d: RunningDaemon) -> str:
    return d.inference_url.replace("http://", "ws://", 1) + "/v1/ws"


@asynccontextmanager
async def connect(
    d: RunningDaemon, *, key: str | None = None, **kwargs: Any
) -> AsyncIterator[WebSocketConnection]:
    """A socket to ``d`` sending ``Authorization: Bearer <key>`` when the daemon has keys (or ``key`` is given)."""
    api_key = key if key is not None else (d.api_key if d.daemon.api_keys.enabled else None)
    headers = [(b"Authorization", f"Bearer {api_key}".encode())] if api_key else None
    async with open_websocket_url(ws_url(d), extra_headers=headers, **kwargs) as conn:
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
