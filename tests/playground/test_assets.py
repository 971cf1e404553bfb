"""The playground's files over HTTP: public, with the security headers; anything else under its prefix 404s."""

from __future__ import annotations

import pytest

from proxy.playground import CONTENT_SECURITY_POLICY
from tests.daemon_harness import keyed_config, mock_config, running_daemon


@pytest.mark.parametrize(
    ("path", "mimetype", "marker"),
    [
        ("/", "text/html", b"<title>trinfer playground</title>"),
        ("/playground/playground.js", "text/javascript", b"sessionStorage"),
        ("/playground/playground.css", "text/css", b"@media"),
    ],
)
async def test_page_files_are_public_and_locked_down(path: str, mimetype: str, marker: bytes) -> None:
    async with running_daemon(keyed_config(mock_config())) as d, d.http(api_key="") as http:
        response = await http.get(path)
        models = await http.get("/v1/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{mimetype}; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert marker in response.content
    assert b"http://" not in response.content and b"https://" not in response.content  # nothing from elsewhere
    assert models.status_code == 401  # the page is public, the API is not


async def test_unknown_playground_file_is_an_openai_404() -> None:
    async with running_daemon(mock_config()) as d, d.http() as http:
        response = await http.get("/playground/other.js")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"
