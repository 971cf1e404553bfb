"""CORS: a browser page on another origin may call trinfer only when ``server.cors_allow_origins`` says so.

Real preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``, as a browser sends them,
without a key) and real cross-origin requests against a daemon on real sockets. Threats covered: a preflight
must not need the key (the browser never sends one) yet must not open the API (the key is still required for
the request itself); an origin not listed gets no CORS headers; ``"*"`` is refused without keys.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from proxy.config import ConfigError, config_from_mapping
from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon

APP = "http://app.example:5173"
OTHER = "https://evil.example"
#: What the openai SDK in a browser asks for (its own headers included).
SDK_HEADERS = "authorization, content-type, x-stainless-os, x-stainless-retry-count"
CHAT: dict[str, Any] = {"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}
#: A stream that holds its admission slot for as long as the test needs (200 tokens, 50 ms apart).
LONG: dict[str, Any] = {**CHAT, "messages": [{"role": "user", "content": " ".join(["w"] * 200)}], "stream": True}


def cors_config(origins: list[str], **mock: Any) -> dict[str, Any]:
    return keyed_config(mock_config(server={"cors_allow_origins": origins}, **mock))


def preflight_headers(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": SDK_HEADERS,
    }


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key() -> None:
    with trio.fail_after(30):
        async with running_daemon(cors_config([APP])) as d, d.http(api_key="") as http:
            chat = await http.options("/v1/chat/completions", headers=preflight_headers(APP))
            models = await http.options("/v1/models", headers=preflight_headers(APP, "GET"))
            async with d.http(admin=True, api_key="") as admin:
                status = await admin.options("/admin/status", headers=preflight_headers(APP, "GET"))
            before = d.backend_status()["started"]
    for answer in (chat, models, status):
        assert answer.status_code == 204
        assert answer.content == b""
        assert answer.headers["access-control-allow-origin"] == APP
        assert "POST" in answer.headers["access-control-allow-methods"]
        assert answer.headers["access-control-allow-headers"] == SDK_HEADERS
        assert answer.headers["access-control-max-age"] == "600"
        assert "Origin" in answer.headers.get_list("vary")
        assert "access-control-allow-credentials" not in answer.headers
    assert before == 0  # a preflight never reaches a backend


async def test_the_request_after_the_preflight_still_needs_the_key_and_its_answers_are_readable() -> None:
    with trio.fail_after(30):
        async with running_daemon(cors_config([APP], active=1, queue=0, token_delay_ms=50)) as d:
            async with d.http(api_key="") as anonymous:
                refused = await anonymous.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP})
            async with d.http() as http:
                ok = await http.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP})
                async with (
                    trio.open_nursery() as nursery,
                    http.stream("POST", "/v1/chat/completions", json=LONG, headers={"Origin": APP}) as running,
                ):
                    assert running.status_code == 200
                    full = await http.post("/v1/chat/completions", json=CHAT, headers={"Origin": APP})
                    nursery.cancel_scope.cancel()
    assert refused.status_code == 401
    assert full.status_code == 429
    for answer in (refused, ok, full, running):
        assert answer.headers["access-control-allow-origin"] == APP
        exposed = {h.strip() for h in answer.headers["access-control-expose-headers"].split(",")}
        assert {"x-request-id", "retry-after"} <= exposed
        assert answer.headers["x-request-id"].startswith("req_")
    assert full.headers["retry-after"]
    assert ok.json()["choices"][0]["message"]["content"] == "hi"


async def test_an_origin_not_listed_gets_403_on_preflight_and_no_cors_headers() -> None:
    with trio.fail_after(30):
        async with running_daemon(cors_config([APP])) as d, d.http() as http:
            preflight = await http.options("/v1/chat/completions", headers=preflight_headers(OTHER))
            request = await http.post("/v1/chat/completions", json=CHAT, headers={"Origin": OTHER})
    assert preflight.status_code == 403
    error = preflight.json()["error"]
    assert error["code"] == "origin_not_allowed"
    assert "server.cors_allow_origins" in error["message"] and OTHER in error["message"]
    assert request.status_code == 200  # not a browser (no CORS enforcement here): served, but unreadable to a page
    for answer in (preflight, request):
        assert not [h for h in answer.headers if h.startswith("access-control-")]


async def test_without_cors_config_a_preflight_is_403_not_401_and_plain_options_stays_405() -> None:
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d, d.http(api_key="") as http:
            preflight = await http.options("/v1/chat/completions", headers=preflight_headers(APP))
            plain = await http.options("/v1/chat/completions", headers={"Authorization": f"Bearer {TEST_KEY}"})
            request = await http.get("/v1/models", headers={"Origin": APP, "Authorization": f"Bearer {TEST_KEY}"})
    assert preflight.status_code == 403
    assert "it is empty" in preflight.json()["error"]["message"]
    assert plain.status_code == 405
    assert request.status_code == 200
    assert "access-control-allow-origin" not in request.headers


async def test_any_origin_with_keys_answers_star() -> None:
    with trio.fail_after(30):
        async with running_daemon(cors_config(["*"])) as d, d.http(api_key="") as http:
            preflight = await http.options("/v1/embeddings", headers=preflight_headers(OTHER))
            refused = await http.get("/v1/models", headers={"Origin": "null"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "Origin" not in preflight.headers.get_list("vary")
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"


def test_any_origin_without_keys_is_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="needs API keys"):
        config_from_mapping(mock_config(server={"cors_allow_origins": ["*"]}))


@pytest.mark.parametrize(
    ("requested", "echoed"),
    [
        ("Authorization,  Content-Type", "authorization, content-type"),
        ("x-a, bad header, x-b, x-a", "x-a, x-b"),
        ("", None),
    ],
)
async def test_preflight_echoes_only_valid_request_header_names(requested: str, echoed: str | None) -> None:
    headers = {"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": requested}
    with trio.fail_after(30):
        async with running_daemon(cors_config([APP])) as d, httpx.AsyncClient(base_url=d.inference_url) as http:
            answer = await http.options("/v1/chat/completions", headers=headers)
    assert answer.status_code == 204
    assert answer.headers.get("access-control-allow-headers") == echoed
