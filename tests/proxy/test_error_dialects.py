"""Per-route error dialects (proxy/errors.py `ErrorRenderers`, registered in proxy/apps.py `ERROR_DIALECTS`):
every error a route answers - the middleware's refusals before any view runs (401, 413, 503 draining), the
framework's (405), the view's own (404 unknown model) and a bug's 500 - is rendered in that route's dialect,
while every other route keeps OpenAI's body.

The dialect here is a small test one registered for ``/v1/embeddings`` on a real daemon; the daemon, its
middleware and the SDK-facing routes are the real ones.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from adapters.errors import TrinferError
from proxy import apps
from tests.daemon_harness import MOCK_MODEL, keyed_config, mock_config, running_daemon, wait_until

HELLO = [{"role": "user", "content": "hello"}]


def test_dialect(exc: BaseException, request_id: str | None) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    if isinstance(exc, TrinferError):
        return exc.http_status, [("X-Dialect", "test")], {"kind": "test", "problem": exc.code}
    return 500, [("X-Dialect", "test")], {"kind": "test", "problem": "bug", "id": request_id}


test_dialect.__test__ = False  # type: ignore[attr-defined]  # a dialect, not a pytest test


@pytest.fixture(autouse=True)
def _test_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apps, "ERROR_DIALECTS", {"/v1/embeddings": test_dialect})


def assert_test_dialect(response: httpx.Response, status: int, problem: str) -> None:
    assert response.status_code == status
    assert response.headers["x-dialect"] == "test"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["kind"] == "test"
    assert response.json()["problem"] == problem
    assert response.headers["x-request-id"].startswith("req_")


async def test_refusals_before_the_view_runs_follow_the_routes_dialect() -> None:
    config = keyed_config(mock_config(embed_dim=8, server={"max_body_bytes": 1000}))
    with trio.fail_after(30):
        async with running_daemon(config) as d, d.http(api_key="") as anonymous, d.http() as http:
            assert_test_dialect(await anonymous.post("/v1/embeddings", json={}), 401, "invalid_api_key")
            too_big = {"model": MOCK_MODEL, "input": "x" * 2000}
            assert_test_dialect(await http.post("/v1/embeddings", json=too_big), 413, "request_too_large")
            openai_shaped = await anonymous.post("/v1/chat/completions", json={})
    assert openai_shaped.status_code == 401
    assert "x-dialect" not in openai_shaped.headers
    assert openai_shaped.json()["error"]["code"] == "invalid_api_key"


async def test_the_views_and_the_frameworks_errors_follow_the_routes_dialect() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(embed_dim=8)) as d, d.http() as http:
            unknown = await http.post("/v1/embeddings", json={"model": "no-such-model", "input": "x"})
            wrong_method = await http.get("/v1/embeddings")
            invalid = await http.post("/v1/embeddings", json={"model": MOCK_MODEL})
            fine = await http.post("/v1/embeddings", json={"model": MOCK_MODEL, "input": "x"})
            openai_shaped = await http.post(
                "/v1/chat/completions", json={"model": "no-such-model", "messages": HELLO}
            )
    assert_test_dialect(unknown, 404, "model_not_found")
    assert_test_dialect(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    assert_test_dialect(invalid, 400, "missing_field")
    assert fine.status_code == 200 and len(fine.json()["data"][0]["embedding"]) == 8
    assert openai_shaped.status_code == 404
    assert openai_shaped.json()["error"]["code"] == "model_not_found"


async def test_a_bug_renders_in_the_routes_dialect_with_only_the_request_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*_: object) -> object:
        raise ZeroDivisionError("secret internals")

    with trio.fail_after(30):
        async with running_daemon(mock_config(embed_dim=8)) as d, d.http() as http:
            monkeypatch.setattr(d.backends["mock"], "embed", broken)
            response = await http.post("/v1/embeddings", json={"model": MOCK_MODEL, "input": "x"})
    assert_test_dialect(response, 500, "bug")
    assert response.json()["id"] == response.headers["x-request-id"]
    assert "secret" not in response.text


async def test_draining_refusals_follow_the_routes_dialect(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(embed_dim=8, token_delay_ms=1000, server={"stop_timeout_s": 60})
    with trio.fail_after(120):
        async with running_daemon(config) as d, d.http() as http, trio.open_nursery() as nursery:
            body = {"model": MOCK_MODEL, "messages": HELLO, "stream": True}

            async def in_flight() -> None:  # keeps the daemon draining while the refusal is checked
                async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    async for _ in response.aiter_bytes():
                        pass

            nursery.start_soon(in_flight)
            await wait_until(lambda: d.admission().active == 1)
            d.request_stop()
            refused = await http.post("/v1/embeddings", json={"model": MOCK_MODEL, "input": "x"})
            refused_chat = await http.post("/v1/chat/completions", json={**body, "stream": False})
    assert_test_dialect(refused, 503, "server_shutting_down")
    assert refused_chat.json()["error"]["code"] == "server_shutting_down"


async def test_the_dialect_prefix_covers_paths_below_it_only() -> None:
    renderers = apps.error_renderers()
    assert renderers.body_for("/v1/embeddings") is test_dialect
    assert renderers.body_for("/v1/embeddings/more") is test_dialect
    assert renderers.body_for("/v1/embeddingsx") is not test_dialect
    assert renderers.body_for("/v1/chat/completions") is not test_dialect
