"""Every backend words its option errors the same way: ``<kind> option '<key>' must be <what>, got <value>``,
``unknown <kind> option '<key>' (expected one of ...)``, ``<kind> option '<key>' is required (...)``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from adapters.anthropic_backend.backend import AnthropicBackend
from adapters.backend import Backend, BackendConfigError
from adapters.llamacpp.backend import LlamaCppBackend
from adapters.mock import MockBackend

GGUF = {"model_path": "m.gguf"}

CASES: list[tuple[type[Backend], dict[str, Any], str]] = [
    (
        MockBackend,
        {"colour": "red"},
        "unknown mock option 'colour' (expected one of boot_delay_ms, embed_dim, fail, fail_after_tokens, reply, "
        "token_delay_ms)",
    ),
    (
        MockBackend,
        {"fail": "sometimes"},
        "mock option 'fail' must be one of none, pre-stream, mid-stream, boot, got 'sometimes'",
    ),
    (MockBackend, {"fail_after_tokens": 0}, "mock option 'fail_after_tokens' must be an integer >= 1, got 0"),
    (MockBackend, {"embed_dim": "8"}, "mock option 'embed_dim' must be an integer, got '8'"),
    (
        MockBackend,
        {"token_delay_ms": math.inf},
        "mock option 'token_delay_ms' must be a non-negative number of milliseconds, got inf",
    ),
    (MockBackend, {"reply": 7}, "mock option 'reply' must be \"echo\" or a list of strings, got 7"),
    (LlamaCppBackend, {}, "llamacpp option 'model_path' is required (the path of a .gguf file)"),
    (LlamaCppBackend, {"model_path": ""}, "llamacpp option 'model_path' must be a non-empty string, got ''"),
    (
        LlamaCppBackend,
        {**GGUF, "n_gpu_layers": 10},
        "unknown llamacpp option 'n_gpu_layers' (expected one of chat_format, embedding, max_grammar_bytes, "
        "max_repetition, max_schema_bytes, max_schema_depth, model_path, n_batch, n_ctx, n_threads, "
        "n_threads_batch, parallel, seed)",
    ),
    (
        LlamaCppBackend,
        {**GGUF, "n_ctx": 8},
        "llamacpp option 'n_ctx' must be an integer >= 16 and <= 1048576, got 8",
    ),
    (LlamaCppBackend, {**GGUF, "n_threads": True}, "llamacpp option 'n_threads' must be an integer, got True"),
    (
        LlamaCppBackend,
        {**GGUF, "embedding": "yes"},
        "llamacpp option 'embedding' must be true or false, got 'yes'",
    ),
    (
        LlamaCppBackend,
        {**GGUF, "chat_format": 3},
        "llamacpp option 'chat_format' must be a non-empty string, got 3",
    ),
    (
        AnthropicBackend,
        {"api_key": "sk-ant-inline"},
        "unknown anthropic option 'api_key' (expected one of api_key_env, base_url, max_tokens_default, "
        "model_map, thinking, timeout_s)",
    ),
    (
        AnthropicBackend,
        {"timeout_s": 0},
        "anthropic option 'timeout_s' must be a positive number of seconds, got 0",
    ),
    (
        AnthropicBackend,
        {"max_tokens_default": 0},
        "anthropic option 'max_tokens_default' must be an integer >= 1, got 0",
    ),
    (
        AnthropicBackend,
        {"model_map": {"fast": ""}},
        "anthropic option 'model_map.fast' must be a non-empty string (the upstream model name), got ''",
    ),
    (
        AnthropicBackend,
        {"base_url": "api.anthropic.com"},
        "anthropic option 'base_url' must be an http:// or https:// URL, got 'api.anthropic.com'",
    ),
    (
        AnthropicBackend,
        {"thinking": 100},
        'anthropic option \'thinking\' must be "off", "adaptive" or a token budget >= 1024, got 100',
    ),
]


@pytest.mark.parametrize(("backend", "options", "message"), CASES)
def test_every_backend_words_a_bad_option_the_same_way(
    backend: type[Backend], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(BackendConfigError) as raised:
        backend.from_options(options)
    assert str(raised.value) == message


def test_an_api_key_pasted_into_api_key_env_is_not_echoed() -> None:
    with pytest.raises(BackendConfigError) as raised:
        AnthropicBackend.from_options({"api_key_env": "ANTHROPIC_API_KEY=sk-ant-secret"})
    assert str(raised.value).startswith(
        "anthropic option 'api_key_env' must be the NAME of an environment variable"
    )
    assert "sk-ant-secret" not in str(raised.value)


def test_absent_optional_options_take_their_defaults() -> None:
    assert LlamaCppBackend.from_options({**GGUF, "seed": None, "chat_format": None}).options.seed is None
