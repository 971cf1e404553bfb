"""Config validation, boot (the key comes from the environment), readiness, status, thinking, and stop."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from adapters.anthropic_backend import AnthropicBackend
from adapters.backend import BackendConfigError
from adapters.errors import NotReady
from adapters.registry import backend_class
from adapters.types import MessageV2, ResolvedV2, Role, SamplingParams, TextBlock, ThinkingConfig, ThinkingMode

from .conftest import KEY_ENV, collect, collect_failure, make_backend
from .fake_upstream import DEFAULT_KEY, FakeMessagesAPI, text_reply

REQ = ResolvedV2(model="claude", messages=(MessageV2(Role.USER, (TextBlock("hi"),)),))


def test_registry_maps_the_kind_to_this_backend() -> None:
    assert backend_class("anthropic") is AnthropicBackend
    assert AnthropicBackend.name == "anthropic"


def test_defaults() -> None:
    options = AnthropicBackend.from_options({}).options
    assert options.api_key_env == "ANTHROPIC_API_KEY"
    assert options.max_tokens_default == 4096
    assert options.timeout_s == 600.0
    assert options.base_url is None
    assert options.thinking is None
    assert options.upstream_model("claude-haiku-4-5") == "claude-haiku-4-5"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"api_key": "sk-ant-inline"}, "api_key"),
        ({"model_map": ["a", "b"]}, "model_map"),
        ({"model_map": {"fast": 3}}, "model_map.fast"),
        ({"api_key_env": ""}, "api_key_env"),
        ({"api_key_env": "ANTHROPIC_API_KEY=sk"}, "api_key_env"),
        ({"base_url": "api.anthropic.com"}, "base_url"),
        ({"max_tokens_default": 0}, "max_tokens_default"),
        ({"max_tokens_default": True}, "max_tokens_default"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": "600"}, "timeout_s"),
        ({"thinking": 100}, "thinking"),
        ({"thinking": "lots"}, "thinking"),
    ],
)
def test_invalid_options_are_refused_naming_the_key(options: dict[str, Any], named: str) -> None:
    with pytest.raises(BackendConfigError, match=named.replace(".", r"\.")):
        AnthropicBackend.from_options(options)


async def test_missing_key_fails_the_boot_with_a_clear_message(
    fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    backend = make_backend(fake)
    with pytest.raises(BackendConfigError, match=f"environment variable {KEY_ENV} is not set"):
        await backend.boot()
    assert not backend.ready()


async def test_blank_key_fails_the_boot(fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "   ")
    with pytest.raises(BackendConfigError, match=KEY_ENV):
        await make_backend(fake).boot()


async def test_ready_after_boot_and_not_after_stop(fake: FakeMessagesAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake)
    assert not backend.ready()
    await backend.boot()
    assert backend.ready()
    await backend.stop(5)
    assert not backend.ready()
    _, error = await collect_failure(backend, REQ)
    assert isinstance(error, NotReady)
    assert error.http_status == 503
    assert fake.requests == []


async def test_generate_before_boot_is_not_ready(fake: FakeMessagesAPI) -> None:
    _, error = await collect_failure(make_backend(fake), REQ)
    assert isinstance(error, NotReady)


async def test_capabilities_and_status_never_show_the_key(
    backend: AnthropicBackend, fake: FakeMessagesAPI
) -> None:
    caps = backend.capabilities()
    assert (caps.v2, caps.vision, caps.tools, caps.json_schema, caps.thinking, caps.embed) == (
        True,
        True,
        True,
        True,
        True,
        False,
    )
    assert caps.thinking_blocks  # it signs its reasoning and takes it back
    status = backend.status()
    assert status["base_url"] == fake.base_url
    assert status["api_key_env"] == KEY_ENV
    assert DEFAULT_KEY not in repr(status)


async def test_stop_closes_the_pooled_upstream_connection(
    monkeypatch: pytest.MonkeyPatch, nursery: trio.Nursery
) -> None:
    fake = FakeMessagesAPI(keep_alive=True)
    await nursery.start(fake.serve)
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake)
    await backend.boot()
    fake.reply(text_reply(["a"]), text_reply(["b"]))
    await collect(backend, REQ)
    await collect(backend, REQ)
    assert fake.idle_closes == 0  # the connection was kept and reused between the two generations
    await backend.stop(5)
    with trio.fail_after(10):
        await fake.wait_idle_closed()
    assert fake.idle_closes == 1


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "expected"),
    [
        ("adaptive", 256, {"type": "adaptive"}),
        (2048, 4096, {"type": "enabled", "budget_tokens": 2048}),
        (2048, 1500, {"type": "enabled", "budget_tokens": 1499}),  # the budget must stay below max_tokens
        (2048, 600, None),  # too small for the minimum budget: runs without thinking
        ("off", 4096, None),
    ],
)
async def test_thinking_option(
    fake: FakeMessagesAPI,
    monkeypatch: pytest.MonkeyPatch,
    thinking: str | int,
    max_tokens: int,
    expected: dict[str, Any] | None,
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake, thinking=thinking)
    await backend.boot()
    fake.reply(text_reply(["x"]))
    try:
        req = ResolvedV2(model="claude", messages=REQ.messages, sampling=SamplingParams(max_tokens=max_tokens))
        await collect(backend, req)
    finally:
        await backend.stop(5)
    assert fake.requests[-1].body.get("thinking") == expected


@pytest.mark.parametrize(
    ("option", "requested", "expected"),
    [
        (None, ThinkingConfig(ThinkingMode.ENABLED, 1024), {"type": "enabled", "budget_tokens": 1024}),
        (2048, ThinkingConfig(ThinkingMode.DISABLED), {"type": "disabled"}),
        ("off", ThinkingConfig(ThinkingMode.ADAPTIVE), {"type": "adaptive"}),
        (2048, None, {"type": "enabled", "budget_tokens": 2048}),
    ],
)
async def test_a_requests_own_thinking_wins_over_the_option(
    fake: FakeMessagesAPI,
    monkeypatch: pytest.MonkeyPatch,
    option: str | int | None,
    requested: ThinkingConfig | None,
    expected: dict[str, Any],
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    backend = make_backend(fake) if option is None else make_backend(fake, thinking=option)
    await backend.boot()
    fake.reply(text_reply(["x"]))
    try:
        sampling = SamplingParams(max_tokens=4096)
        await collect(
            backend, ResolvedV2(model="claude", messages=REQ.messages, sampling=sampling, thinking=requested)
        )
    finally:
        await backend.stop(5)
    assert fake.requests[-1].body["thinking"] == expected
