"""Errors over ``/v1/ws``: bad frames get an ``error`` frame naming the problem while the socket and the other
requests carry on; request errors before and after the first chunk match what HTTP/SSE send."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from tests.daemon_harness import mock_config, running_daemon, wait_until

from .wsclient import chat_body, connect, create, next_frame, text_of, until_terminal

LONG = " ".join(f"w{i}" for i in range(20))


async def http_error(d: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with d.http() as http:
        r = await http.post("/v1/chat/completions", json={**body, "stream": True})
    return r.status_code, r.json()["error"]


async def sse_error_event(d: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The ``data: {"error": ...}`` event that ends a stream failing after its first chunk."""
    async with d.http() as http, http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    last: dict[str, Any] = json.loads(lines[-1].removeprefix("data: "))
    return last["error"]


BAD_FRAMES = [
    ("{not json", None, "invalid_json", None),
    ('["a list"]', None, "invalid_frame", None),
    ('{"type": "response.create", "id": "x1"}', "x1", "unknown_frame_type", "type"),
    ('{"type": "chat.completion.create", "request": {}}', None, "missing_field", "id"),
    ('{"type": "chat.completion.create", "id": "x2"}', "x2", "missing_field", "request"),
    (
        '{"type": "chat.completion.create", "id": "x3", "request": {"model": "mock-echo"}}',
        "x3",
        "missing_field",
        "messages",
    ),
]


async def test_bad_frames_get_error_frames_and_the_socket_and_other_requests_survive(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100)) as d, connect(d) as ws:
            await ws.send_message(create("busy", LONG))
            assert (await next_frame(ws))["id"] == "busy"
            for text, frame_id, code, param in BAD_FRAMES:
                await ws.send_message(text)
                frame = await next_frame(ws)
                while frame["id"] == "busy":
                    assert frame["type"] == "chat.completion.chunk"
                    frame = await next_frame(ws)
                assert frame["type"] == "error", text
                assert frame["id"] == frame_id, text
                assert (frame["error"]["code"], frame["error"]["param"]) == (code, param), text
                assert frame["error"]["type"] == "invalid_request_error"
                assert frame["error"]["message"]
            rest = (await until_terminal(ws, "busy"))["busy"]
            assert rest[-1]["type"] == "chat.completion.done"
            assert d.backend_status()["completed"] == 1
            assert d.backend_status()["started"] == 1  # no bad frame reached the backend


async def test_an_invalid_request_body_gets_the_error_http_gives() -> None:
    body = {"model": "mock-echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            status, expected = await http_error(d, body)
            assert status == 400
            await ws.send_message(json.dumps({"type": "chat.completion.create", "id": "t", "request": body}))
            assert await next_frame(ws) == {"type": "error", "id": "t", "error": expected}


async def test_a_duplicate_in_flight_id_is_refused_and_the_first_request_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100)) as d, connect(d) as ws:
            await ws.send_message(create("dup", "the original request"))
            assert (await next_frame(ws))["id"] == "dup"  # its role chunk: the request is running
            await ws.send_message(create("dup", "a second one"))
            frames = [await next_frame(ws)]
            while frames[-1]["type"] != "chat.completion.done":
                frames.append(await next_frame(ws))
            errors = [f for f in frames if f["type"] == "error"]
            assert len(errors) == 1
            assert errors[0]["id"] == "dup"
            assert (errors[0]["error"]["code"], errors[0]["error"]["param"]) == ("duplicate_id", "id")
            assert "dup" in errors[0]["error"]["message"]
            assert text_of(frames) == "the original request"  # only the empty role chunk was read above
            assert d.backend_status()["started"] == 1


async def test_over_the_per_socket_bound_gets_an_error_frame_not_a_dropped_socket(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = mock_config(token_delay_ms=100, server={"ws_max_requests_per_socket": 2})
    with trio.fail_after(60):
        async with running_daemon(config) as d, connect(d) as ws:
            for frame_id in ("a", "b", "c"):
                await ws.send_message(create(frame_id, LONG))
            frames = await until_terminal(ws, "a", "b", "c")
            assert frames["c"] == [
                {
                    "type": "error",
                    "id": "c",
                    "error": {
                        "message": "This socket already runs 2 requests (ws_max_requests_per_socket); "
                        "wait for one to finish or open another socket",
                        "type": "rate_limit_error",
                        "param": None,
                        "code": "too_many_requests",
                    },
                }
            ]
            assert frames["a"][-1]["type"] == frames["b"][-1]["type"] == "chat.completion.done"
            assert d.backend_status()["started"] == 2
            await ws.send_message(create("c", "room again"))  # the slots of a and b are free again
            assert text_of((await until_terminal(ws, "c"))["c"]) == "room again"


async def test_the_per_socket_bound_is_per_socket(autojump_clock: trio.abc.Clock) -> None:
    config = mock_config(token_delay_ms=100, server={"ws_max_requests_per_socket": 1})
    with trio.fail_after(60):
        async with running_daemon(config) as d, connect(d) as one, connect(d) as two:
            await one.send_message(create("a", LONG))
            await two.send_message(create("a", LONG))
            assert (await until_terminal(one, "a"))["a"][-1]["type"] == "chat.completion.done"
            assert (await until_terminal(two, "a"))["a"][-1]["type"] == "chat.completion.done"


async def test_an_oversized_frame_gets_request_too_large() -> None:
    config = mock_config(server={"max_body_bytes": 2048})
    with trio.fail_after(30):
        async with running_daemon(config) as d, connect(d) as ws:
            await ws.send_message(create("big", "x" * 3000))
            frame = await next_frame(ws)
            assert frame["type"] == "error"
            assert frame["id"] is None  # an oversized frame is not parsed
            assert frame["error"]["code"] == "request_too_large"
            assert "2048" in frame["error"]["message"]
            await ws.send_message(create("small", "fits"))
            assert text_of((await until_terminal(ws, "small"))["small"]) == "fits"


async def test_a_binary_frame_closes_the_socket_with_1003_and_cancels_its_requests(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100)) as d:
            async with connect(d) as ws:
                await ws.send_message(create("a", LONG))
                assert (await next_frame(ws))["id"] == "a"
                await ws.send_message(b"\x00binary")
                with pytest.raises(ConnectionClosed) as caught:
                    while True:
                        await next_frame(ws)
                assert caught.value.reason is not None
                assert caught.value.reason.code == 1003
                assert "binary" in (caught.value.reason.reason or "")
            await wait_until(lambda: d.backend_status()["cancelled"] == 1)
            await wait_until(lambda: d.admission().active == 0)


async def test_an_unknown_model_gets_the_http_404_error_object() -> None:
    body = chat_body(model="no-such-model")
    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            status, expected = await http_error(d, body)
            assert status == 404
            await ws.send_message(json.dumps({"type": "chat.completion.create", "id": "m", "request": body}))
            frame = await next_frame(ws)
            assert frame == {"type": "error", "id": "m", "error": expected}
            assert frame["error"]["code"] == "model_not_found"


async def test_a_pre_stream_backend_failure_is_an_error_frame_with_the_http_error_object() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(fail="pre-stream")) as d, connect(d) as ws:
            status, expected = await http_error(d, chat_body())
            assert status == 502
            await ws.send_message(create("p"))
            assert (await until_terminal(ws, "p"))["p"] == [{"type": "error", "id": "p", "error": expected}]


async def test_a_mid_stream_failure_keeps_sent_chunks_and_ends_with_the_sse_error_object_and_no_done() -> None:
    with trio.fail_after(30):
        async with running_daemon(mock_config(fail="mid-stream", fail_after_tokens=2)) as d, connect(d) as ws:
            expected = await sse_error_event(d, chat_body("one two three four"))
            await ws.send_message(create("m", "one two three four"))
            frames = (await until_terminal(ws, "m"))["m"]
            assert [f["type"] for f in frames] == ["chat.completion.chunk"] * 3 + ["error"]  # role, one, two
            assert text_of(frames) == "one two "
            assert all(f["chunk"]["choices"][0]["finish_reason"] is None for f in frames[:-1])
            assert frames[-1] == {"type": "error", "id": "m", "error": expected}
            assert expected["code"] == "upstream_error"


async def test_queue_full_is_an_error_frame_for_that_request(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with running_daemon(mock_config(token_delay_ms=100, active=1, queue=0)) as d, connect(d) as ws:
            await ws.send_message(create("holder", "one two three"))
            assert (await next_frame(ws))["id"] == "holder"
            await ws.send_message(create("refused", "x"))
            frames = await until_terminal(ws, "holder", "refused")
            assert frames["refused"][0]["error"]["code"] == "queue_full"
            assert frames["refused"][0]["error"]["type"] == "rate_limit_error"
            assert frames["holder"][-1]["type"] == "chat.completion.done"


async def test_only_a_frame_over_twice_max_body_bytes_closes_the_socket_with_1009() -> None:
    """Up to 2 x max_body_bytes a too-large frame gets an error frame; above it hypercorn closes with 1009."""
    config = mock_config(server={"max_body_bytes": 1024})
    with trio.fail_after(30):
        async with running_daemon(config) as d, connect(d) as ws:
            await ws.send_message(create("big", "x" * 1800))  # over 1024, within 2048
            frame = await next_frame(ws)
            assert (frame["type"], frame["error"]["code"]) == ("error", "request_too_large")
            await ws.send_message(create("huge", "x" * 2100))  # over 2048
            with pytest.raises(ConnectionClosed) as caught:
                await next_frame(ws)
            assert caught.value.reason is not None
            assert caught.value.reason.code == 1009
            assert d.backend_status()["started"] == 0


async def test_with_max_body_bytes_above_16_mib_a_larger_in_limit_frame_reaches_the_route() -> None:
    """hypercorn's default limit (16 MiB) would close this socket with 1009; the route answers it instead."""
    config = mock_config(server={"max_body_bytes": 32 * 1024 * 1024})
    padding = "x" * (17 * 1024 * 1024)
    with trio.fail_after(60):
        async with running_daemon(config) as d, connect(d) as ws:
            await ws.send_message(json.dumps({"type": "response.create", "id": "big", "pad": padding}))
            frame = await next_frame(ws)
            assert (frame["type"], frame["id"], frame["error"]["code"]) == ("error", "big", "unknown_frame_type")
            await ws.send_message(create("after", "still open"))
            assert text_of((await until_terminal(ws, "after"))["after"]) == "still open"


async def test_a_backend_bug_is_an_internal_error_frame_revealing_only_the_request_id(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object) -> None:
        raise KeyError("secret detail")

    with trio.fail_after(30):
        async with running_daemon(mock_config()) as d, connect(d) as ws:
            monkeypatch.setattr(d.backends["mock"], "generate_v2", broken)  # a backend with a bug
            await ws.send_message(create("bug"))
            frame = await next_frame(ws)
            assert frame["type"] == "error"
            assert frame["id"] == "bug"
            error = frame["error"]
            assert (error["type"], error["code"], error["param"]) == ("server_error", "internal_error", None)
            assert "secret" not in error["message"]
            request_id = error["message"].rsplit(" ", 1)[1]
            assert request_id.startswith("req_")
            assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)  # logged with its id
            monkeypatch.undo()
            await ws.send_message(create("after", "still works"))
            assert text_of((await until_terminal(ws, "after"))["after"]) == "still works"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked as RFC 6455 requires of clients), payload under 126 bytes."""
    assert len(payload) < 126
    key = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def test_a_text_frame_that_is_not_utf8_gets_invalid_json_then_a_1007_close_frame(
    autojump_clock: trio.abc.Clock,
) -> None:
    # wsproto fails the connection on invalid UTF-8 (RFC 6455 section 8.1 requires it); the socket used to be
    # dropped without a close frame or the invalid_json error frame docs/websocket.md promises.
    with trio.fail_after(60):
        async with running_daemon(mock_config()) as d:
            stream = await trio.open_tcp_stream("127.0.0.1", d.inference_port)
            client = WSConnection(ConnectionType.CLIENT)
            events: list[Any] = []
            async with stream:
                await stream.send_all(client.send(Request(host="127.0.0.1", target="/v1/ws")))
                while not any(isinstance(e, AcceptConnection) for e in events):
                    client.receive_data(await stream.receive_some(65536))
                    events += client.events()
                await stream.send_all(masked_frame(0x1, b'{"type": "\xff\xfe"}'))
                while not any(isinstance(e, CloseConnection) for e in events):
                    data = await stream.receive_some(65536)
                    client.receive_data(data or None)
                    events += client.events()
            [text] = [e.data for e in events if isinstance(e, TextMessage)]
            frame = json.loads(text)
            assert (frame["type"], frame["id"], frame["error"]["code"]) == ("error", None, "invalid_json")
            [close] = [e for e in events if isinstance(e, CloseConnection)]
            assert close.code == 1007
            assert close.reason == "invalid UTF-8 in a text frame"
