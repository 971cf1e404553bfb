"""CORS: a browser page on another origin may call trinfer only when ``server.cors_allow_origins`` says so.

Real preflights (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``, as a browser sends them,
without a key) and real cross-origin requests against a daemon on real sockets. Threats covered: a preflight
must not need the key (the browser never sends one) yet must not open the API (the key is still required for
the request itself); an origin not listed gets no CORS headers, and its requests - a "simple" one that no
preflight guards, a WebSocket upgrade - are refused before any backend sees them, while the server's own
origin and clients that send no ``Origin`` are served; ``"*"`` is refused without keys.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected

from proxy.config import ConfigError, config_from_mapping
from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon
from tests.ws.wsclient import open_ws, ws_url

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
    for answer in (preflight, request):
        assert answer.status_code == 403
        error = answer.json()["error"]
        assert error["code"] == "origin_not_allowed"
        assert "server.cors_allow_origins" in error["message"] and OTHER in error["message"]
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
    assert request.status_code == 403
    assert "it is empty" in request.json()["error"]["message"]
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


#: A chat completion as a page can send it without a preflight: ``fetch`` with a string body (``text/plain``).
SIMPLE_BODY = b'{"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}'


async def test_a_simple_post_from_an_origin_not_listed_is_refused_before_any_backend_sees_it() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(server={"cors_allow_origins": [APP]})) as d, d.http() as http:
            own = d.inference_url.removeprefix("http://")
            answers = {}
            for origin in (OTHER, "null", f"http://{own}.evil.example", f"https://{own}", f"http://{own}", None):
                headers = {"Content-Type": "text/plain;charset=UTF-8"}
                if origin is not None:
                    headers["Origin"] = origin
                answers[origin] = await http.post("/v1/chat/completions", content=SIMPLE_BODY, headers=headers)
            anthropic = await http.post(
                "/v1/messages",
                content=SIMPLE_BODY.replace(b'"messages"', b'"max_tokens": 5, "messages"'),
                headers={"Content-Type": "text/plain", "Origin": OTHER},
            )
            status = d.backend_status()
    refused = [OTHER, "null", f"http://{own}.evil.example"]
    for origin in refused:
        assert answers[origin].status_code == 403, origin
        assert answers[origin].json()["error"]["code"] == "origin_not_allowed"
    assert anthropic.status_code == 403
    assert anthropic.json()["error"]["type"] == "permission_error"
    # The server's own origin (the scheme aside: a TLS proxy in front) and non-browser clients are served.
    for origin in (f"https://{own}", f"http://{own}", None):
        assert answers[origin].status_code == 200, origin
        assert answers[origin].json()["choices"][0]["message"]["content"] == "hi"
    assert status["started"] == 3


async def test_a_websocket_upgrade_from_an_origin_not_listed_is_refused() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(server={"cors_allow_origins": [APP]})) as d:
            with pytest.raises(ConnectionRejected) as caught:
                async with open_ws(ws_url(d), extra_headers=[(b"Origin", OTHER.encode())]):
                    raise AssertionError("the upgrade was accepted")
            async with open_ws(ws_url(d), extra_headers=[(b"Origin", APP.encode())]) as allowed:
                assert allowed.subprotocol is None
            status = d.backend_status()
    assert caught.value.status_code == 403
    assert caught.value.body is not None
    assert json.loads(caught.value.body)["error"]["code"] == "origin_not_allowed"
    assert status["started"] == 0


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
