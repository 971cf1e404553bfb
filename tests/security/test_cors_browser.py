"""CORS in a real browser: a page served from another origin calls trinfer with ``fetch``, as a web UI would.

Headless Chromium (see tests/playground/browser.py) loads a page from a small server on another port - another
origin - whose script sends a chat completion with an ``Authorization`` header and JSON body, so the browser
sends a real preflight first, then reads the answer's status, body and ``x-request-id``. Listed in
``cors_allow_origins``, the page gets its answers (a 401 included); not listed, the browser blocks the call and
no generation runs - nor does one the page sends without a preflight (a ``text/plain`` POST, a WebSocket).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import trio

from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon
from tests.playground.browser import Browser, require_browser

PAGE = """<!doctype html>
<meta charset="utf-8">
<pre id="result">pending</pre>
<script>
async function call(key) {
  const response = await fetch(%(api)s + "/v1/chat/completions", {
    method: "POST",
    headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json", "x-stainless-os": "Linux"},
    body: JSON.stringify({model: "mock-echo", messages: [{role: "user", content: "hello from a page"}]}),
  });
  const body = await response.json();
  return {
    status: response.status,
    requestId: response.headers.get("x-request-id"),
    answer: body.choices ? body.choices[0].message.content : body.error.code,
  };
}
(async () => {
  const out = document.getElementById("result");
  try {
    out.textContent = JSON.stringify([await call(%(key)s), await call("sk-wrong")]);
  } catch (error) {
    out.textContent = "blocked: " + error.name;
  }
})();
</script>
"""


async def serve_page(html: bytes, stream: trio.SocketStream) -> None:
    """A one-response HTTP server: reads the request head, answers ``html`` (404 for anything but ``/``)."""
    head = b""
    async with stream:
        for _ in range(64):
            if b"\r\n\r\n" in head:
                break
            data = await stream.receive_some(4096)
            if not data:
                return
            head += data
        found = head.startswith(b"GET / ")
        body = html if found else b"not found"
        status = b"200 OK" if found else b"404 Not Found"
        await stream.send_all(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )


#: What a page can send without any preflight: a "simple" POST (a string body is ``text/plain``), whose answer
#: it cannot read but which the server still receives, and a WebSocket, which CORS does not cover at all.
SIMPLE_PAGE = """<!doctype html>
<meta charset="utf-8">
<pre id="result">pending</pre>
<script>
const body = JSON.stringify({model: "mock-echo", messages: [{role: "user", content: "from a page"}]});
function socket() {
  return new Promise((resolve) => {
    const ws = new WebSocket(%(api)s.replace("http://", "ws://") + "/v1/ws");
    ws.onopen = () => {
      ws.send(JSON.stringify({type: "chat.completion.create", id: "a", request: JSON.parse(body)}));
      ws.onmessage = (event) => {
        if (JSON.parse(event.data).type !== "chat.completion.chunk") resolve("opened");
      };
    };
    ws.onerror = () => resolve("refused");
  });
}
(async () => {
  const sent = await fetch(%(api)s + "/v1/chat/completions", {method: "POST", mode: "no-cors", body: body});
  document.getElementById("result").textContent = JSON.stringify([sent.type, await socket()]);
})();
</script>
"""


async def page_result(
    page_origin_allowed: bool, page: str = PAGE, *, keyed: bool = True
) -> tuple[str, dict[str, Any]]:
    """Run a page server and a daemon, open ``page`` in Chromium; (the page's result text, mock status)."""
    require_browser()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            html: list[bytes] = []
            serve = partial(trio.serve_tcp, lambda s: serve_page(html[0], s), 0, host="127.0.0.1")
            listeners = await nursery.start(serve)
            page_origin = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            allowed = [page_origin] if page_origin_allowed else ["http://elsewhere.example"]
            config = mock_config(server={"cors_allow_origins": allowed})
            async with running_daemon(keyed_config(config) if keyed else config) as d:
                html.append((page % {"api": json.dumps(d.inference_url), "key": json.dumps(TEST_KEY)}).encode())
                browser: Browser = await trio.to_thread.run_sync(Browser)
                try:
                    await trio.to_thread.run_sync(browser.open, page_origin + "/")
                    result = await trio.to_thread.run_sync(
                        partial(browser.wait_for, lambda: browser.find("result").text != "pending" and browser)
                    )
                    text: str = result.find("result").text
                finally:
                    await trio.to_thread.run_sync(browser.close)
                status = d.backend_status()
            nursery.cancel_scope.cancel()
    return text, status


async def test_a_page_on_a_listed_origin_reads_answers_and_errors() -> None:
    text, status = await page_result(page_origin_allowed=True)
    ok, refused = json.loads(text)
    assert (ok["status"], ok["answer"]) == (200, "hello from a page")
    assert (refused["status"], refused["answer"]) == (401, "invalid_api_key")
    assert ok["requestId"].startswith("req_") and refused["requestId"].startswith("req_")
    assert status["completed"] == 1


async def test_a_page_on_another_origin_is_blocked_by_the_browser_before_any_generation() -> None:
    text, status = await page_result(page_origin_allowed=False)
    assert text == "blocked: TypeError"
    assert status["started"] == 0


async def test_a_page_on_another_origin_cannot_start_a_generation_without_a_preflight() -> None:
    # A keyless server on loopback (the default): nothing but the origin check stands between the page and the
    # model. Before it, the browser sent both requests and the server ran them (the page just could not read
    # the POST's answer).
    text, status = await page_result(page_origin_allowed=False, page=SIMPLE_PAGE, keyed=False)
    assert json.loads(text) == ["opaque", "refused"]
    assert status["started"] == 0
