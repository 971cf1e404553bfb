"""The daemon's lifecycle in-process: boot failures and timeouts, the graceful drain and its deadline.

Real-signal, real-process checks of the same behaviour are in ``test_cli.py``.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import trio

from proxy.daemon import DaemonState, StartupError
from tests.daemon_harness import MOCK_MODEL, RunningDaemon, mock_config, running_daemon, wait_until

TEN: list[Any] = [{"role": "user", "content": "a b c d e f g h i j"}]


async def test_a_backend_that_fails_to_boot_stops_startup_before_the_inference_listener() -> None:
    config = {
        "backends": [
            {"name": "good", "kind": "mock", "models": ["good"]},
            {"name": "bad", "kind": "mock", "models": ["bad"], "fail": "boot", "boot_delay_ms": 10},
        ]
    }
    daemons: list[RunningDaemon] = []
    with trio.fail_after(10), pytest.raises(StartupError, match="'bad' failed to boot"):
        async with running_daemon(config, wait_ready=False) as d:
            daemons.append(d)
            await d.daemon.wait_ready()
    (d,) = daemons
    assert d.daemon.inference_url is None
    assert d.daemon.state is DaemonState.STOPPED
    assert not d.backends["good"].ready()  # the backend that did boot was stopped


async def test_boot_slower_than_ready_timeout_stops_startup(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(boot_delay_ms=60_000, server={"ready_timeout_s": 5})
    with trio.fail_after(30), pytest.raises(StartupError, match="not ready after ready_timeout_s = 5 s"):
        async with running_daemon(config, wait_ready=False) as d:
            await d.daemon.wait_ready()
    assert d.daemon.inference_url is None


async def test_graceful_stop_lets_in_flight_streams_finish(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(token_delay_ms=1000, server={"stop_timeout_s": 60})
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client:
            stream = await client.chat.completions.create(model=MOCK_MODEL, messages=TEN, stream=True)
            first = await stream.__anext__()
            d.request_stop()
            # Draining: /ready and every new request answer 503, /health still 200.
            ready = await d.admin_get("/ready")
            assert (ready.status_code, ready.json()["error"]["code"]) == (503, "server_shutting_down")
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model=MOCK_MODEL, messages=TEN)
            assert (caught.value.status_code, caught.value.code) == (503, "server_shutting_down")
            async with d.http() as http:
                assert (await http.get("/health")).status_code == 200
            assert (await d.admin_get("/admin/status")).json()["state"] == "draining"
            # The stream started before the stop runs to its end.
            rest = [chunk async for chunk in stream]
            text = (first.choices[0].delta.content or "") + "".join(c.choices[0].delta.content or "" for c in rest)
            assert text == "a b c d e f g h i j"
            assert rest[-1].choices[0].finish_reason == "stop"
            await wait_until(lambda: d.daemon.state is DaemonState.STOPPED)
            assert not d.backends["mock"].ready()  # stop() was awaited
            assert d.backend_status()["completed"] == 1
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", d.inference_port)


async def test_past_the_stop_deadline_streams_get_an_error_event_and_requests_a_503(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = mock_config(active=1, queue=1, token_delay_ms=1000, server={"stop_timeout_s": 3})
    body = {"model": MOCK_MODEL, "messages": TEN, "stream": True}
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.http() as http, trio.open_nursery() as nursery:
            outcomes: dict[str, Any] = {}

            async def stream() -> None:
                async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    outcomes["stream"] = [line async for line in response.aiter_lines() if line]

            async def queued() -> None:
                response = await http.post("/v1/chat/completions", json={**body, "stream": False})
                outcomes["queued"] = response

            nursery.start_soon(stream)
            await wait_until(lambda: d.admission().active == 1)
            nursery.start_soon(queued)
            await wait_until(lambda: d.admission().queued == 1)
            d.request_stop()
            await wait_until(lambda: len(outcomes) == 2)
            await wait_until(lambda: d.daemon.state is DaemonState.STOPPED)
    lines = outcomes["stream"]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert 1 <= len(events) - 1 < 10  # some tokens, not all of them
    assert events[-1]["error"]["code"] == "server_shutting_down"
    assert all("error" not in e and e["choices"][0]["finish_reason"] is None for e in events[:-1])
    assert "data: [DONE]" not in lines
    queued_response = outcomes["queued"]
    assert queued_response.status_code == 503
    assert queued_response.json()["error"]["code"] == "server_shutting_down"
    assert d.backend_status()["cancelled"] == 1
    assert d.backend_status()["started"] == 1


async def test_a_stop_requested_while_loading_ends_cleanly_without_binding(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(boot_delay_ms=60_000)
    with trio.fail_after(30):
        async with running_daemon(config, wait_ready=False) as d:
            await wait_until(lambda: d.daemon.state is DaemonState.LOADING)
            d.request_stop()
            await wait_until(lambda: d.daemon.state is DaemonState.STOPPED)
            assert trio.current_time() < 60  # the boot was abandoned, not waited for
    assert d.daemon.inference_url is None
    assert not d.backends["mock"].ready()


async def test_stop_order_inference_listener_closes_then_backends_stop_while_admin_still_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order docs/design-notes.md records: inference listener closed, backends' stop() awaited (admin up,
    state ``draining``), then the admin listener closes."""
    seen: dict[str, Any] = {}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            backend = d.backends["mock"]
            real_stop = backend.stop

            async def observed_stop(grace_s: float) -> None:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
                except OSError:
                    seen["inference"] = "refused"
                else:
                    seen["inference"] = "accepted"
                    await stream.aclose()
                seen["health"] = (await d.admin_get("/health")).status_code
                seen["state"] = (await d.admin_get("/admin/status")).json()["state"]
                await real_stop(grace_s)

            monkeypatch.setattr(backend, "stop", observed_stop)
    assert seen == {"inference": "refused", "health": 200, "state": "draining"}
    assert not d.backends["mock"].ready()
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", d.admin_port)
