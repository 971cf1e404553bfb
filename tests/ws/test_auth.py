"""Auth on ``/v1/ws``: the HTTP keys, as an ``Authorization`` header or the ``openai-insecure-api-key.<key>``
subprotocol; a refused upgrade is an HTTP status with the OpenAI error body, before any socket opens."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionRejected

from tests.daemon_harness import TEST_KEY, keyed_config, mock_config, running_daemon, wait_until

from .wsclient import connect, create, open_ws, text_of, until_terminal, ws_url

SUBPROTOCOL = "openai-insecure-api-key."


async def assert_refused(url: str, status: int, code: str, **kwargs: object) -> None:
    with pytest.raises(ConnectionRejected) as caught:
        async with open_ws(url, **kwargs):  # type: ignore[arg-type]
            raise AssertionError("the upgrade was accepted")
    assert caught.value.status_code == status
    assert caught.value.body is not None
    error = json.loads(caught.value.body)["error"]
    assert error["code"] == code
    assert TEST_KEY not in caught.value.body.decode()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"extra_headers": [(b"Authorization", b"Bearer sk-wrong")]},
        {"extra_headers": [(b"Authorization", b"Basic " + TEST_KEY.encode())]},
        {"subprotocols": [SUBPROTOCOL + "sk-wrong"]},
        {"subprotocols": ["realtime"]},
        # The header decides when present, even if the subprotocol carries the right key.
        {"extra_headers": [(b"Authorization", b"Bearer sk-wrong")], "subprotocols": [SUBPROTOCOL + TEST_KEY]},
    ],
    ids=[
        "no-credentials",
        "wrong-bearer",
        "wrong-scheme",
        "wrong-subprotocol-key",
        "other-subprotocol",
        "header-wins",
    ],
)
async def test_a_refused_upgrade_gets_401_before_the_socket_opens(kwargs: dict[str, object]) -> None:
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d:
            await assert_refused(ws_url(d), 401, "invalid_api_key", **kwargs)
            assert d.backend_status()["started"] == 0


async def test_the_bearer_header_opens_the_socket() -> None:
    with trio.fail_after(30):
        async with running_daemon(keyed_config(mock_config())) as d, connect(d, key=TEST_KEY) as ws:
            assert ws.subprotocol is None
            await ws.send_message(create("a", "authorised"))
            assert text_of((await until_terminal(ws, "a"))["a"]) == "authorised"


async def test_the_key_subprotocol_opens_the_socket_and_is_echoed() -> None:
    offered = SUBPROTOCOL + TEST_KEY
    with trio.fail_after(30):
        async with (
            running_daemon(keyed_config(mock_config())) as d,
            open_ws(ws_url(d), subprotocols=["realtime", offered]) as ws,
        ):
            assert ws.subprotocol == offered  # browsers fail the handshake unless it is echoed
            await ws.send_message(create("a", "via subprotocol"))
            assert text_of((await until_terminal(ws, "a"))["a"]) == "via subprotocol"


@pytest.mark.parametrize(("subprotocol_key", "echoed"), [("sk-nope", False), (TEST_KEY, True)])
async def test_with_a_valid_bearer_a_key_subprotocol_is_echoed_only_if_its_key_is_valid(
    subprotocol_key: str, echoed: bool
) -> None:
    offered = SUBPROTOCOL + subprotocol_key
    with trio.fail_after(30):
        async with (
            running_daemon(keyed_config(mock_config())) as d,
            connect(d, key=TEST_KEY, subprotocols=[offered]) as ws,
        ):
            assert ws.subprotocol == (offered if echoed else None)
            await ws.send_message(create("a", "bearer decides"))
            assert text_of((await until_terminal(ws, "a"))["a"]) == "bearer decides"


async def test_without_configured_keys_any_socket_opens_and_an_offered_key_subprotocol_is_echoed() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d:
            async with open_ws(ws_url(d)) as ws:
                assert ws.subprotocol is None
                await ws.send_message(create("a", "open"))
                assert text_of((await until_terminal(ws, "a"))["a"]) == "open"
            async with open_ws(ws_url(d), subprotocols=[SUBPROTOCOL + "anything"]) as ws:
                assert ws.subprotocol == SUBPROTOCOL + "anything"


async def test_an_upgrade_while_draining_gets_503(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with (
            running_daemon(mock_config(token_delay_ms=100)) as d,
            d.client() as client,
            trio.open_nursery() as nursery,
        ):
            # A request in flight keeps the drain going while the upgrade is attempted.
            nursery.start_soon(
                lambda: client.chat.completions.create(
                    model="mock-echo", messages=[{"role": "user", "content": "a b c d e f"}]
                )
            )
            await wait_until(lambda: d.admission().active == 1)
            d.request_stop()
            await assert_refused(ws_url(d), 503, "server_shutting_down")
