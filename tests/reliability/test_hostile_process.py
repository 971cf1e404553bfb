"""The hostile-connection attacks of ``test_hostile_connections.py`` against a real daemon process, back to
back, ending with SIGTERM: the process must still serve, hold no slot, and exit 0.

Real time, real process (``python -m proxy serve``), loopback only; the write timeout is 1 s so the stalled
WebSocket is cut quickly, and every wait is guarded by ``trio.fail_after``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionClosed

from tests.daemon_harness import TEST_KEY, daemon_process, wait_until
from tests.reliability.raw_http import exchange
from tests.reliability.test_hostile_connections import h2_request
from tests.ws.wsclient import create, open_ws

CONFIG = f"""
[server]
api_keys = ["{TEST_KEY}"]
write_timeout_s = 1
stop_timeout_s = 2

[[backends]]
name = "mock"
kind = "mock"
models = ["mock-echo"]
active = 2
queue = 0
reply = {json.dumps(["x" * 65536] * 400)}
"""


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_daemon_process_survives_every_hostile_connection_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "trinfer.toml"
    config.write_text(CONFIG)
    with trio.fail_after(120):
        async with daemon_process("serve", "--config", str(config)) as proc:
            assert proc.inference_url is not None and proc.admin_url is not None
            inference, admin = port_of(proc.inference_url), port_of(proc.admin_url)
            for port in (inference, admin):
                [response] = (await exchange(port, *h2_request("wrong"), between_s=1)).responses
                assert response.status == 505
            smuggled = (
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            assert [r.status for r in (await exchange(inference, smuggled)).responses] == [400]
            assert [r.status for r in (await exchange(inference, b"NOT HTTP\r\n\r\n")).responses] == [400]
            bad_host = b"GET /health HTTP/1.1\r\nHost: a..b\r\n\r\n"
            assert [r.status for r in (await exchange(admin, bad_host)).responses] == [400]

            ws_url = proc.inference_url.replace("http://", "ws://") + "/v1/ws"
            headers = [(b"Authorization", f"Bearer {TEST_KEY}".encode())]
            async with httpx.AsyncClient(base_url=proc.admin_url, headers=dict(headers)) as http:

                async def active() -> int:
                    status = (await http.get("/admin/status")).json()
                    queue = status["backends"][0]["queue"]
                    return int(status["inflight"] + queue["active"] + queue["queued"])

                async with open_ws(ws_url, extra_headers=headers, message_queue_size=1) as ws:
                    await ws.send_message(create("one"))
                    await ws.send_message(create("two"))
                    for index in range(40):
                        await ws.send_message("{not json" if index % 2 else create(f"more-{index}"))

                    async def busy() -> bool:
                        return await active() > 0

                    async def idle() -> bool:
                        return await active() == 0

                    await wait_until(busy, poll_s=0.05)
                    await wait_until(idle, poll_s=0.05)  # cut after write_timeout_s, though it never read
                    try:
                        while True:
                            await ws.get_message()
                    except ConnectionClosed:
                        pass
                assert (await http.get("/health")).status_code == 200
            async with httpx.AsyncClient(base_url=proc.inference_url) as http:
                assert (await http.get("/health")).status_code == 200

            proc.send_signal()
            assert await proc.wait() == 0
            assert "Traceback" not in proc.stderr_text()
