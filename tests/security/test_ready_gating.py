"""Threat: a client reaches the inference API before the backends are ready and gets errors (or worse).

Defence: the inference listener is bound only after every backend has booted; until then a connect is refused
at the TCP level, while the admin listener already answers ``/ready`` with 503.
"""

from __future__ import annotations

import socket

import pytest
import trio

from tests.daemon_harness import mock_config, running_daemon


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_inference_port_refuses_connections_until_backends_are_ready(
    autojump_clock: trio.abc.Clock,
) -> None:
    port = free_port()
    config = mock_config(boot_delay_ms=5000, server={"port": port})
    with trio.fail_after(60):
        async with running_daemon(config, wait_ready=False) as d:
            ready = await d.admin_get("/ready")
            assert ready.status_code == 503
            assert ready.json()["error"]["code"] == "not_ready"
            assert (await d.admin_get("/admin/status")).json()["state"] == "loading"
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", port)
            assert d.daemon.inference_url is None

            await d.daemon.wait_ready()
            assert d.inference_port == port
            assert (await d.admin_get("/ready")).status_code == 200
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.aclose()
            async with d.client() as client:
                models = await client.models.list()
            assert [m.id for m in models.data] == ["mock-echo"]
