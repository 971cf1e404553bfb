"""Models loaded on demand, unloaded when idle, under ``max_loaded_models``: a real daemon on real sockets, the
openai SDK as client, mock backends standing in for models (``boot_delay_ms`` is their load time), every timer
on trio's autojump clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import openai
import pytest
import trio

from proxy.model_manager import ManagedModel
from tests.daemon_harness import RunningDaemon, running_daemon, wait_until

SAY: Any = [{"role": "user", "content": "one two three"}]
SLOW: Any = [{"role": "user", "content": "a b c d e f g h i j"}]  # 10 tokens


def models_config(
    names: Iterable[str] = ("alpha", "beta", "gamma"),
    *,
    server: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """One on-demand mock backend per name, serving the model id of the same name; a load takes 2 s."""
    table = {"kind": "mock", "reply": "echo", "load": "on_demand", "boot_delay_ms": 2000, **options}
    return {
        "server": {"queue_timeout_s": 60, **(server or {})},
        "backends": [{**table, "name": name, "models": [name]} for name in names],
    }


def managed(d: RunningDaemon, name: str) -> ManagedModel:
    backend = d.handle(name).backend
    assert isinstance(backend, ManagedModel)
    return backend


def states(d: RunningDaemon) -> dict[str, str]:
    return {h.name: h.status()["details"]["state"] for h in d.daemon.router.handles}


async def ask(client: openai.AsyncOpenAI, model: str, messages: Any = SAY) -> str:
    reply = await client.chat.completions.create(model=model, messages=messages)
    return reply.choices[0].message.content or ""


async def test_on_demand_models_do_not_delay_readiness_and_load_on_first_request(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        started = trio.current_time()
        async with running_daemon(models_config()) as d, d.client() as client:
            assert trio.current_time() == started  # ready without loading anything (2 s each)
            assert states(d) == {"alpha": "unloaded", "beta": "unloaded", "gamma": "unloaded"}
            assert sorted(m.id for m in (await client.models.list()).data) == ["alpha", "beta", "gamma"]
            asked = trio.current_time()
            assert await ask(client, "beta") == "one two three"
            assert trio.current_time() - asked >= 2.0  # it waited for the load
            status = (await d.admin_get("/admin/status")).json()
    beta = next(b for b in status["backends"] if b["name"] == "beta")["details"]
    assert beta["state"] == "ready" and beta["loads"] == 1 and beta["load_progress"] == 1.0
    assert beta["last_used"] is not None and beta["load_error"] is None and beta["last_load_s"] == 2.0
    assert status["models"]["loaded"] == 1 and status["models"]["max_loaded_models"] == 0
    assert states(d)["alpha"] == "stopped"


async def test_concurrent_first_requests_load_the_model_once(autojump_clock: trio.abc.Clock) -> None:
    replies: list[str] = []
    with trio.fail_after(60):
        async with running_daemon(models_config(["alpha"])) as d, d.client() as client:

            async def one() -> None:
                replies.append(await ask(client, "alpha"))

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(one)
                await wait_until(lambda: managed(d, "alpha").state.value == "loading")
                status = d.backend_status("alpha")
                assert status["state"] == "loading" and status["load_progress"] == 0.0
                await wait_until(lambda: d.backend_status("alpha")["waiting_for_load"] == 4)
            assert d.backend_status("alpha")["loads"] == 1
    assert replies == ["one two three"] * 4


async def test_one_loaded_model_at_a_time_swaps_on_each_request(autojump_clock: trio.abc.Clock) -> None:
    config = models_config(server={"max_loaded_models": 1})
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client:
            for model in ("alpha", "beta", "gamma", "alpha", "beta"):
                assert await ask(client, model) == "one two three"
                loaded = [name for name, state in states(d).items() if state != "unloaded"]
                assert loaded == [model]
            metrics = (await d.admin_get("/metrics")).text
    assert [d.backend_status(n)["loads"] for n in ("alpha", "beta", "gamma")] == [2, 2, 1]
    assert [d.backend_status(n)["unloads"] for n in ("alpha", "beta", "gamma")] == [2, 1, 1]
    assert 'trinfer_model_loads_total{backend="alpha",outcome="ok"} 2.0' in metrics
    assert 'trinfer_model_unloads_total{backend="gamma",reason="evicted"} 1.0' in metrics
    assert 'trinfer_model_load_duration_seconds_count{backend="beta"} 2.0' in metrics
    assert 'trinfer_model_loaded{backend="beta"} 1.0' in metrics
    assert 'trinfer_model_loaded{backend="alpha"} 0.0' in metrics
    assert "trinfer_models_loaded 1.0" in metrics


async def test_the_least_recently_used_idle_model_is_the_one_unloaded(autojump_clock: trio.abc.Clock) -> None:
    config = models_config(server={"max_loaded_models": 2})
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client:
            for model in ("alpha", "beta", "alpha"):  # beta is then the least recently used
                await ask(client, model)
                await trio.sleep(1)  # the mock answers in no time: one second between uses orders them
            await ask(client, "gamma")
            assert states(d) == {"alpha": "ready", "beta": "unloaded", "gamma": "ready"}


async def test_a_busy_model_is_never_unloaded_the_next_waits_for_it_to_end(autojump_clock: trio.abc.Clock) -> None:
    config = models_config(["alpha", "beta"], server={"max_loaded_models": 1}, token_delay_ms=1000)
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:
            ended: dict[str, float] = {}

            async def use(model: str, messages: Any) -> None:
                await ask(client, model, messages)
                ended[model] = trio.current_time()

            nursery.start_soon(use, "alpha", SLOW)  # ~10 s of generation once loaded
            await wait_until(lambda: managed(d, "alpha").busy == 1)
            nursery.start_soon(use, "beta", SAY)
            await wait_until(lambda: d.backend_status("beta")["waiting_for_load"] == 1)
            await trio.sleep(5)  # alpha is half-way through: still loaded, beta still waiting
            assert states(d) == {"alpha": "ready", "beta": "unloaded"}
    assert ended["beta"] > ended["alpha"]
    assert d.backend_status("alpha")["unloads"] == 1 and d.backend_status("beta")["loads"] == 1


async def test_waiting_for_room_past_queue_timeout_is_503_queue_timeout_never_429(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = models_config(["alpha", "beta"], server={"max_loaded_models": 1, "queue_timeout_s": 4},
                           token_delay_ms=1000)  # fmt: skip
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.client() as client, trio.open_nursery() as nursery:
            nursery.start_soon(ask, client, "alpha", SLOW)
            await wait_until(lambda: managed(d, "alpha").busy == 1)
            asked = trio.current_time()
            with pytest.raises(openai.InternalServerError) as caught:
                await ask(client, "beta")
            assert trio.current_time() - asked == pytest.approx(4.0)
            assert caught.value.status_code == 503 and caught.value.code == "queue_timeout"
            assert states(d) == {"alpha": "ready", "beta": "unloaded"}  # the dropped load never evicted alpha
    assert d.backend_status("beta")["loads"] == 0


async def test_keep_alive_unloads_an_idle_model_but_never_under_a_generation(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = models_config(["alpha"], keep_alive_s=30, token_delay_ms=4000)
    with trio.fail_after(300):
        async with running_daemon(config) as d, d.client() as client:
            await ask(client, "alpha", SLOW)  # 40 s of generation: longer than keep_alive_s
            ended = trio.current_time()
            assert states(d) == {"alpha": "ready"}
            await trio.sleep_until(ended + 29.9)
            assert states(d) == {"alpha": "ready"}
            await trio.sleep_until(ended + 30.1)
            assert states(d) == {"alpha": "unloaded"}
            assert d.backend_status("alpha")["unloads"] == 1
            metrics = (await d.admin_get("/metrics")).text
            assert await ask(client, "alpha") == "one two three"  # loads again
            assert d.backend_status("alpha")["loads"] == 2
    assert 'trinfer_model_unloads_total{backend="alpha",reason="keep_alive"} 1.0' in metrics


async def test_a_client_that_leaves_while_its_model_loads_leaves_the_queue_and_the_load_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(models_config(["alpha"], active=1)) as d, d.client() as client:
            with trio.move_on_after(1):  # the load takes 2 s
                await ask(client, "alpha")
            await wait_until(lambda: d.backend_status("alpha")["waiting_for_load"] == 0)
            await wait_until(lambda: d.admission("alpha").active == 0)  # its slot is free
            assert states(d) == {"alpha": "loading"}
            await wait_until(lambda: states(d) == {"alpha": "ready"})
            asked = trio.current_time()
            assert await ask(client, "alpha") == "one two three"
            assert trio.current_time() == asked  # already loaded
            metrics = (await d.admin_get("/metrics")).text
    assert 'trinfer_cancelled_total{backend="alpha",phase="non_streaming"} 1.0' in metrics


async def test_a_load_that_fails_is_a_503_naming_why_and_shown_in_status(autojump_clock: trio.abc.Clock) -> None:
    config = models_config(["alpha", "broken"])
    config["backends"][1]["fail"] = "boot"
    with trio.fail_after(60):
        async with running_daemon(config) as d, d.client() as client:
            with pytest.raises(openai.InternalServerError) as caught:
                await ask(client, "broken")
            assert caught.value.status_code == 503 and caught.value.code == "backend_unavailable"
            assert "failed to load" in caught.value.message and "fail = 'boot'" in caught.value.message
            assert await ask(client, "alpha") == "one two three"  # the others are served
            status = d.backend_status("broken")
            metrics = (await d.admin_get("/metrics")).text
    assert status["state"] == "unloaded" and status["load_failures"] == 1 and status["loads"] == 0
    assert "fail = 'boot'" in status["load_error"]
    assert 'trinfer_model_loads_total{backend="broken",outcome="failed"} 1.0' in metrics


async def test_boot_models_are_loaded_before_ready_and_count_against_the_bound(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = models_config(["alpha", "beta"], server={"max_loaded_models": 1})
    config["backends"][0]["load"] = "boot"
    with trio.fail_after(60):
        started = trio.current_time()
        async with running_daemon(config) as d, d.client() as client:
            assert trio.current_time() - started == pytest.approx(2.0)  # F-13: alpha loaded first
            assert states(d) == {"alpha": "ready", "beta": "unloaded"}
            await ask(client, "beta")
            assert states(d) == {"alpha": "unloaded", "beta": "ready"}


async def test_a_stop_during_a_load_lets_the_waiting_request_finish_within_the_drain(
    autojump_clock: trio.abc.Clock,
) -> None:
    replies: list[str] = []
    with trio.fail_after(60):
        async with running_daemon(models_config(["alpha"])) as d, d.client() as client:

            async def one() -> None:
                replies.append(await ask(client, "alpha"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(one)
                await wait_until(lambda: states(d) == {"alpha": "loading"})
                d.request_stop()  # the drain (stop_timeout_s, 10 s) outlasts the 2 s load
    assert replies == ["one two three"]
    assert states(d) == {"alpha": "stopped"} and d.backend_status("alpha")["loads"] == 1


async def test_an_embedding_request_loads_its_model_too(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(models_config(["alpha"], embed_dim=8)) as d, d.client() as client:
            result = await client.embeddings.create(model="alpha", input=["a", "b"])
            assert [len(item.embedding) for item in result.data] == [8, 8]
            assert states(d) == {"alpha": "ready"} and managed(d, "alpha").busy == 0


async def test_two_models_asked_for_at_once_under_a_bound_of_one_both_answer(autojump_clock: trio.abc.Clock) -> None:
    """Each model loads once: the requests that waited for one load are all served before the other model's
    load, queued behind it, unloads it."""
    config = models_config(["alpha", "beta"], server={"max_loaded_models": 1})
    replies: dict[str, str] = {}
    with trio.fail_after(60):
        async with running_daemon(config) as d, d.client() as client:

            async def one(model: str) -> None:
                replies[model] = await ask(client, model)

            async with trio.open_nursery() as nursery:
                for model in ("alpha", "beta", "alpha", "beta"):
                    nursery.start_soon(one, model)
    assert replies == {"alpha": "one two three", "beta": "one two three"}
    assert [d.backend_status(n)["loads"] for n in ("alpha", "beta")] == [1, 1]
