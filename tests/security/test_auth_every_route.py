"""Threat: a route reachable without the API key (a new route someone forgot to protect, the admin API).

Defence: with ``api_keys`` set, the middleware checks ``Authorization: Bearer <key>`` (or, on the Anthropic
routes only, ``x-api-key: <key>``; constant time) before routing, on both listeners; only ``/health``,
``/ready`` and the playground page's own files (which ask for the key) are open. The routes are read from the
apps' own URL maps, so a route added later is covered without editing this test.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
import trio

from proxy.direct_routes import DirectRoutes
from proxy.playground import PUBLIC_PATHS as PLAYGROUND_FILES
from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon

OPEN = {"/health", "/ready", *PLAYGROUND_FILES}
ANTHROPIC_ROUTES = "/v1/messages"


def routes(asgi_app: Any) -> list[tuple[str, str]]:
    """(method, concrete path) for every route of the app inside a `RequestMiddleware`: the direct routes
    (`proxy.direct_routes`, POST only) in front of the quart app, and every rule of the quart app."""
    app = asgi_app.app
    found = []
    if isinstance(app, DirectRoutes):
        found.extend(("POST", path) for path in sorted(app.paths))
        app = app.app
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "x", rule.rule)
        if path.startswith("/static"):
            continue
        methods = sorted((rule.methods or {"GET"}) - {"HEAD", "OPTIONS"})
        found.extend((method, path) for method in methods)
    return found


async def test_every_route_but_health_and_ready_needs_the_key() -> None:
    refused = (
        {},
        {"Authorization": "Bearer sk-wrong"},
        {"Authorization": TEST_KEY},
        {"Authorization": "Basic x"},
        {"x-api-key": "sk-wrong"},
        {"x-api-key": f"Bearer {TEST_KEY}"},
    )
    checked = 0
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d:
            for base, app in ((d.inference_url, d.daemon.inference_app), (d.admin_url, d.daemon.admin_app)):
                table = [*routes(app), ("GET", "/no/such/route"), ("POST", "/v1/nope")]
                assert len(table) > 2
                for headers in refused:
                    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
                        for method, path in table:
                            response = await http.request(method, path, json={})
                            if path in OPEN:
                                assert response.status_code != 401, (method, path)
                            else:
                                assert response.status_code == 401, (method, path, headers)
                                if path.startswith(ANTHROPIC_ROUTES):  # Anthropic's error body there
                                    assert response.json()["error"]["type"] == "authentication_error"
                                else:
                                    assert response.json()["error"]["code"] == "invalid_api_key"
                            checked += 1
                async with httpx.AsyncClient(
                    base_url=base, headers={"Authorization": f"Bearer {TEST_KEY}"}
                ) as http:
                    for method, path in table:
                        response = await http.request(method, path, json={})
                        assert response.status_code != 401, (method, path)
                async with httpx.AsyncClient(base_url=base, headers={"x-api-key": TEST_KEY}) as http:
                    for method, path in table:
                        response = await http.request(method, path, json={})
                        # Anthropic's header is a key only on Anthropic's routes.
                        assert (response.status_code == 401) is (
                            path not in OPEN and not path.startswith(ANTHROPIC_ROUTES)
                        )
    assert checked >= 40


async def test_the_sdk_with_a_wrong_key_gets_authentication_error() -> None:
    with trio.fail_after(10):
        async with running_daemon(keyed_config(mock_config(), "sk-one", "sk-two")) as d:
            async with d.client(api_key="sk-three") as client:
                with pytest.raises(openai.AuthenticationError) as caught:
                    await client.models.list()
            assert caught.value.code == "invalid_api_key"
            for key in ("sk-one", "sk-two"):  # every configured key works
                async with d.client(api_key=key) as client:
                    assert [m.id for m in (await client.models.list()).data] == ["mock-echo"]


async def test_api_key_file_keys_work(tmp_path: Any) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# operators\nsk-from-file\n\n")
    config = {**mock_config(), "server": {"api_key_file": str(key_file)}}
    with trio.fail_after(10):
        async with running_daemon(config) as d:
            async with d.client(api_key="sk-from-file") as client:
                await client.models.list()
            async with d.client(api_key="sk-other") as client:
                with pytest.raises(openai.AuthenticationError):
                    await client.models.list()
