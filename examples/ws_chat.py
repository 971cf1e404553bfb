"""Stream two chat completions at once over one WebSocket to trinfer, and cancel one of them part way.

    python examples/ws_chat.py [--url ws://127.0.0.1:8080/v1/ws] [--model ID] \
        "Tell me a short story." "Tell me a very long story."

The first prompt streams to its end; the second is cancelled after ``--cancel-after`` chunks (its generation
stops on the server and its slot is freed, while the first goes on over the same socket). Without ``--model``
the example uses the first model the server lists (``GET /v1/models`` next to the WebSocket URL). The API key,
if the server wants one, comes from ``--api-key`` or ``OPENAI_API_KEY`` and is sent as ``Authorization:
Bearer``. Protocol: docs/websocket.md. Needs only ``trio`` and ``trio-websocket`` (both installed with trinfer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

KEEP, CANCEL = "first", "second"


def create_frame(frame_id: str, model: str, prompt: str) -> str:
    request = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    return json.dumps({"type": "chat.completion.create", "id": frame_id, "request": request})


def models_url(ws_url: str) -> str:
    """The ``/v1/models`` URL beside a ``/v1/ws`` URL (``ws://h:p/v1/ws`` -> ``http://h:p/v1/models``)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    prefix = parts.path[: -len("/ws")] if parts.path.endswith("/ws") else "/v1"
    return urlunsplit((scheme, parts.netloc, f"{prefix}/models", "", ""))


def first_model(url: str, api_key: str | None) -> str:
    """Blocking: the id of the first model the server lists at ``url``."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return str(json.load(response)["data"][0]["id"])


def delta_text(chunk: dict[str, Any]) -> str:
    return "".join(choice["delta"].get("content") or "" for choice in chunk["choices"])


async def run(ws: WebSocketConnection, model: str, prompts: tuple[str, str], cancel_after: int) -> int:
    """Send both requests, print every frame's gist, cancel the second; 0 if both ended as intended."""
    await ws.send_message(create_frame(KEEP, model, prompts[0]))
    await ws.send_message(create_frame(CANCEL, model, prompts[1]))
    texts = {KEEP: "", CANCEL: ""}
    chunks = {KEEP: 0, CANCEL: 0}
    outcome: dict[str, str] = {}
    cancel_sent = False
    while len(outcome) < 2:
        frame = json.loads(await ws.get_message())
        frame_id = frame["id"]
        if frame["type"] == "chat.completion.chunk":
            piece = delta_text(frame["chunk"])
            texts[frame_id] += piece
            chunks[frame_id] += 1
            print(f"{frame_id}: chunk {piece!r}", flush=True)
            if frame_id == CANCEL and chunks[CANCEL] >= cancel_after and not cancel_sent:
                await ws.send_message(json.dumps({"type": "chat.completion.cancel", "id": CANCEL}))
                cancel_sent = True
                print(f"{CANCEL}: cancel sent", flush=True)
        elif frame["type"] == "chat.completion.done":
            outcome[frame_id] = f"done, finish_reason={frame['finish_reason']}, usage={json.dumps(frame['usage'])}"
        elif frame["type"] == "error" and frame["error"]["code"] == "request_cancelled":
            outcome[frame_id] = f"cancelled after {chunks[frame_id]} chunk(s)"
        else:
            error = frame["error"]
            print(f"{frame_id}: error {error['code']}: {error['message']}", flush=True)
            if frame_id is None:  # a frame the server could not read: not expected from this client
                return 1
            outcome[frame_id] = f"error {error['code']}"
    for frame_id in (KEEP, CANCEL):
        print(f"{frame_id}: {outcome[frame_id]}: {texts[frame_id]!r}", flush=True)
    ok = outcome[KEEP].startswith("done") and not outcome[CANCEL].startswith("error")
    return 0 if ok else 1


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8080/v1/ws", help="the server's /v1/ws URL")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"), help="default: $OPENAI_API_KEY")
    parser.add_argument("--model", help="model id (default: the first model the server lists)")
    parser.add_argument("--cancel-after", type=int, default=2, help="chunks of the second answer before cancel")
    parser.add_argument("prompts", nargs="*", default=["Say hello.", "Tell me a very long story."])
    args = parser.parse_args(argv)
    if len(args.prompts) != 2:
        parser.error("give exactly two prompts (or none for the defaults)")
    headers = [(b"Authorization", f"Bearer {args.api_key}".encode())] if args.api_key else None
    try:
        model = args.model or await trio.to_thread.run_sync(first_model, models_url(args.url), args.api_key)
        async with open_websocket_url(args.url, extra_headers=headers) as ws:
            return await run(ws, model, (args.prompts[0], args.prompts[1]), args.cancel_after)
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        print(f"listing the models was refused with HTTP {exc.code}: {body}", file=sys.stderr)
    except ConnectionRejected as exc:
        body = (exc.body or b"").decode("utf-8", "replace")
        print(f"connection refused with HTTP {exc.status_code}: {body}", file=sys.stderr)
    except HandshakeError as exc:
        print(f"handshake failed: {exc}", file=sys.stderr)
    except ConnectionClosed as exc:
        print(f"connection closed by the server: {exc.reason}", file=sys.stderr)
    except OSError as exc:
        print(f"cannot connect to {args.url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(trio.run(main))
