"""The Responses WebSocket protocol, sans-IO: client events -> requests or the error event the client gets."""

from __future__ import annotations

import json

import pytest
from openai.types.responses.responses_server_event import ResponseWsError

from adapters.errors import Unavailable
from compat.errors import RequestValidationError
from compat.openai.responses_ws import (
    ClientEventError,
    ResponseInProgress,
    error_event,
    event_frame,
    parse_client_event,
)

LIMIT = 1024


def test_create_is_parsed_like_a_post_body_and_always_streams() -> None:
    frame = json.dumps({"type": "response.create", "model": "m", "input": "hi", "stream": False, "stream_id": "s"})
    parsed = parse_client_event(frame, max_bytes=LIMIT)
    assert parsed.model == "m" and parsed.request.messages[0].text() == "hi"


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("not json", "invalid_json", None),
        ("[1]", "invalid_type", None),
        ('{"model": "m"}', "invalid_value", "type"),
        ('{"type": "response.cancel"}', "invalid_value", "type"),
        ('{"type": "response.steer", "input": []}', "unsupported", "type"),
        ('{"type": "response.create", "input": "x"}', "missing_field", "model"),
        (
            '{"type": "response.create", "model": "m", "input": "x", "conversation": "c"}',
            "unsupported_parameter",
            "conversation",
        ),
        ('"' + "x" * LIMIT + '"', "request_too_large", None),
        ('"\\ud800"', "invalid_json", None),
    ],
)
def test_events_that_cannot_be_acted_on(text: str, code: str, param: str | None) -> None:
    with pytest.raises(ClientEventError) as info:
        parse_client_event(text, max_bytes=LIMIT)
    assert (info.value.error.code, info.value.error.param) == (code, param)


def test_error_events_have_the_shape_the_sdk_reads() -> None:
    for exc, status in [
        (RequestValidationError("bad", param="input"), 400),
        (ResponseInProgress("busy"), 409),
        (Unavailable("down", status=503), 503),
        (KeyError("secret"), 500),
    ]:
        event = error_event(exc, "req_1")
        parsed = ResponseWsError.model_validate(json.loads(event_frame(event)))
        assert parsed.type == "error" and parsed.status == status
        assert "secret" not in parsed.error.message
