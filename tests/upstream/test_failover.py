"""Several base URLs as one backend, with real trinfer processes as the upstreams: a dead URL never shows, an
upstream killed in the middle of a run costs no client an error, a URL comes back when its probe passes, and
boot waits for a first healthy URL. Real clock: the upstreams are other processes."""

from __future__ import annotations

import httpx
import openai
import pytest
import trio

from proxy.daemon import StartupError
from tests.daemon_harness import running_daemon, wait_until

from .processes import GATEWAY_MODEL, UpstreamServer, closed_port_url, free_port, gateway_config


async def test_a_dead_url_in_the_list_never_surfaces_as_an_error(echo_upstream: UpstreamServer) -> None:
    dead = closed_port_url()
    with trio.fail_after(60):
        async with running_daemon(gateway_config([dead, echo_upstream.base_url, dead.replace("/v1", "/w")])) as d:
            async with d.client() as client:
                for i in range(12):
                    words = f"request number {i}"
                    if i % 2:
                        reply = await client.chat.completions.create(
                            model=GATEWAY_MODEL, messages=[{"role": "user", "content": words}]
                        )
                        assert reply.choices[0].message.content == words
                    else:
                        stream = await client.chat.completions.create(
                            model=GATEWAY_MODEL, messages=[{"role": "user", "content": words}], stream=True
                        )
                        assert (
                            "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == words
                        )
            urls = d.backend_status("fleet")["base_urls"]
            assert [u["healthy"] for u in urls] == [False, True, False]
            assert urls[0]["last_error"] == "probe failed: connection refused or failed"
            assert urls[0]["down_since"] is not None
            assert urls[1]["requests"] == 12
            assert (urls[0]["requests"], urls[2]["requests"]) == (0, 0)


async def test_an_upstream_killed_during_a_run_of_concurrent_requests_costs_no_client_an_error(
    echo_upstream: UpstreamServer,
) -> None:
    # The doomed upstream waits 3 s before its first token: every request it holds when it dies has had no
    # byte yet, so each must move to the survivor.
    doomed = UpstreamServer(token_delay_ms=3000)
    answers: list[str] = []
    try:
        config = gateway_config([doomed.base_url, echo_upstream.base_url], health_interval_s=0.5)
        with trio.fail_after(60):
            async with running_daemon(config) as d, d.client() as client:

                async def ask(i: int, stream: bool) -> None:
                    messages = [{"role": "user", "content": f"hello{i}"}]
                    if stream:
                        chunks = await client.chat.completions.create(
                            model=GATEWAY_MODEL, messages=messages, stream=True
                        )
                        answers.append(
                            "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
                        )
                    else:
                        reply = await client.chat.completions.create(model=GATEWAY_MODEL, messages=messages)
                        answers.append(reply.choices[0].message.content or "")

                async with trio.open_nursery() as nursery:
                    for i in range(8):
                        nursery.start_soon(ask, i, i % 2 == 0)
                    await wait_until(lambda: d.backend_status("fleet")["base_urls"][0]["outstanding"] >= 1)
                    held = d.backend_status("fleet")["base_urls"][0]["outstanding"]
                    doomed.kill()
                    for i in range(8, 40):
                        nursery.start_soon(ask, i, i % 2 == 0)
                        await trio.sleep(0.005)
                urls = d.backend_status("fleet")["base_urls"]
                assert urls[0]["healthy"] is False
                assert d.backend_status("fleet")["failovers"] >= held >= 1
    finally:
        doomed.close()
    assert sorted(answers) == sorted(f"hello{i}" for i in range(40))


async def test_boot_waits_for_a_first_healthy_url_and_a_down_url_returns_when_its_probe_passes() -> None:
    port = free_port()
    late_url = f"http://127.0.0.1:{port}/v1"
    config = gateway_config([late_url], health_interval_s=0.2)
    late: UpstreamServer | None = None
    try:
        with trio.fail_after(60):
            async with running_daemon(config, wait_ready=False) as d, httpx.AsyncClient() as http:
                assert (await http.get(f"{d.admin_url}/ready")).status_code == 503
                await trio.sleep(0.5)  # several probes fail: still not ready
                assert (await http.get(f"{d.admin_url}/ready")).status_code == 503
                late = await trio.to_thread.run_sync(lambda: UpstreamServer(port=port))
                await d.daemon.wait_ready()
                async with d.client() as client:
                    reply = await client.chat.completions.create(
                        model=GATEWAY_MODEL, messages=[{"role": "user", "content": "finally"}]
                    )
                assert reply.choices[0].message.content == "finally"
                # It dies: down, and the backend is not ready (503 at once); it comes back: healthy again.
                late.kill()
                await wait_until(lambda: not d.backends["fleet"].ready(), poll_s=0.05)
                async with d.client() as client:
                    with pytest.raises(openai.APIStatusError) as caught:
                        await client.chat.completions.create(
                            model=GATEWAY_MODEL, messages=[{"role": "user", "content": "anyone?"}]
                        )
                    assert (caught.value.status_code, caught.value.code) == (503, "backend_unavailable")
                late.close()
                late = await trio.to_thread.run_sync(lambda: UpstreamServer(port=port))
                await wait_until(lambda: d.backends["fleet"].ready(), poll_s=0.05)
                assert d.backend_status("fleet")["base_urls"][0]["down_since"] is None
    finally:
        if late is not None:
            late.close()


async def test_boot_fails_when_no_url_ever_answers_its_probe() -> None:
    config = gateway_config([closed_port_url()], server={"ready_timeout_s": 1})
    with trio.fail_after(30), pytest.raises(StartupError, match="not ready after ready_timeout_s = 1 s"):
        async with running_daemon(config):
            pass
