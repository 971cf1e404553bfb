"""Config: TOML, ``TRINFER_*`` variables and flags, in that precedence, validated into one line per error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.config import (
    DEFAULT_HOWTO,
    Config,
    ConfigError,
    Flags,
    ServerConfig,
    config_from_mapping,
    load_config,
)
from proxy.daemon import Daemon

MOCK: dict[str, Any] = {"kind": "mock", "models": ["mock-echo"]}


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return str(path)


def test_defaults_match_the_documented_ones() -> None:
    config = config_from_mapping({"backends": [MOCK]})
    assert config.server == ServerConfig()
    assert (config.server.host, config.server.port, config.server.admin_port) == ("127.0.0.1", 8080, 8081)
    assert config.server.max_body_bytes == 8 * 1024 * 1024
    (backend,) = config.backends
    assert (backend.name, backend.priority, backend.active, backend.queue) == ("mock", 0, 4, 10)


def test_llamacpp_backends_admit_as_many_generations_as_they_decode_together() -> None:
    """A llamacpp backend's admission ``active`` follows its ``parallel`` option (default 4); an explicit
    ``active`` wins, and a bad ``parallel`` is left for the backend's own check (admission falls back to 1)."""
    base = {"kind": "llamacpp", "models": ["m"], "model_path": "m.gguf"}
    default = config_from_mapping({"backends": [base]})
    assert default.backends[0].active == 4
    assert dict(default.backends[0].options) == {"model_path": "m.gguf"}
    assert config_from_mapping({"backends": [{**base, "parallel": 8}]}).backends[0].active == 8
    assert config_from_mapping({"backends": [{**base, "parallel": 8, "active": 2}]}).backends[0].active == 2
    assert config_from_mapping({"backends": [{**base, "parallel": "many"}]}).backends[0].active == 1


def test_precedence_flags_then_environment_then_file(tmp_path: Path) -> None:
    path = toml(
        tmp_path,
        '[server]\nport = 1111\nadmin_port = 2222\nhost = "127.0.0.2"\nqueue_timeout_s = 5\n'
        '[[backends]]\nkind = "mock"\nmodels = ["a"]\n',
    )
    env = {"TRINFER_PORT": "3333", "TRINFER_ADMIN_PORT": "4444", "TRINFER_QUEUE_TIMEOUT_S": "7.5"}
    config = load_config(Flags(config=path, port=5555), env)
    assert config.server.port == 5555  # flag beats variable
    assert config.server.admin_port == 4444  # variable beats file
    assert config.server.host == "127.0.0.2"  # file beats default
    assert config.server.queue_timeout_s == 7.5
    assert config.server.stop_timeout_s == 10.0  # default


def test_config_file_from_the_environment_and_api_keys_list(tmp_path: Path) -> None:
    path = toml(tmp_path, '[[backends]]\nkind = "mock"\nmodels = ["a"]\n')
    config = load_config(Flags(), {"TRINFER_CONFIG": path, "TRINFER_API_KEYS": "sk-a, sk-b,"})
    assert config.api_keys == ("sk-a", "sk-b")
    assert config.backends[0].models == ("a",)


def test_backend_flag_replaces_the_file_backends(tmp_path: Path) -> None:
    path = toml(tmp_path, '[[backends]]\nkind = "mock"\nmodels = ["from-file"]\n')
    config = load_config(Flags(config=path, backend="mock", model="custom"), {})
    assert [b.models for b in config.backends] == [("custom",)]
    assert load_config(Flags(backend="mock"), {}).backends[0].models == ("mock-echo",)


def test_llamacpp_flag_serves_the_model_file_stem() -> None:
    config = load_config(Flags(backend="llamacpp", model="/models/SmolLM2-135M.Q8_0.gguf"), {})
    (backend,) = config.backends
    assert backend.models == ("SmolLM2-135M.Q8_0",)
    assert dict(backend.options) == {"model_path": "/models/SmolLM2-135M.Q8_0.gguf"}
    assert load_config(Flags(model="/m/x.gguf"), {}).backends[0].kind == "llamacpp"


def test_api_key_file_keys_are_added(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("sk-one\n# comment\n\nsk-two\n")
    config = config_from_mapping(
        {"server": {"api_keys": ["sk-zero"], "api_key_file": str(keys)}, "backends": [MOCK]}
    )
    assert config.api_keys == ("sk-zero", "sk-one", "sk-two")
    with pytest.raises(ConfigError, match="api_key_file"):
        config_from_mapping({"server": {"api_key_file": str(tmp_path / "none")}, "backends": [MOCK]})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backends": []}, "at least one"),
        ({}, "at least one"),
        ({"server": [], "backends": [MOCK]}, r"\[server\] must be a table"),
        ({"servers": {}, "backends": [MOCK]}, "unknown top-level key 'servers'"),
        ({"server": {"port": 70000}, "backends": [MOCK]}, "server.port must be >= 0 and <= 65535"),
        ({"server": {"port": True}, "backends": [MOCK]}, "server.port must be an integer"),
        ({"server": {"stop_timeout_s": 0}, "backends": [MOCK]}, "server.stop_timeout_s must be a positive"),
        ({"server": {"write_timeout_s": "x"}, "backends": [MOCK]}, "server.write_timeout_s"),
        ({"server": {"max_body_bytes": 0}, "backends": [MOCK]}, "server.max_body_bytes"),
        ({"server": {"api_keys": "sk"}, "backends": [MOCK]}, "server.api_keys must be a list"),
        ({"server": {"api_keys": [""]}, "backends": [MOCK]}, r"server.api_keys\[0\]"),
        ({"server": {"log_level": "loud"}, "backends": [MOCK]}, "server.log_level"),
        ({"backends": [{"models": ["m"]}]}, r"backends\[0\].kind"),
        ({"backends": [{"kind": "mock"}]}, r"backends\[0\].models"),
        ({"backends": [{"kind": "mock", "models": []}]}, "at least one model"),
        ({"backends": [{**MOCK, "active": 0}]}, r"backends\[0\].active must be >= 1"),
        ({"backends": [{**MOCK, "queue": -1}]}, r"backends\[0\].queue must be >= 0"),
        ({"backends": [MOCK, MOCK]}, "name 'mock' is used twice"),
        ({"backends": ["mock"]}, r"backends\[0\] must be a table"),
    ],
)
def test_invalid_config_names_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_mapping(data)
    assert "\n" not in str(caught.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TRINFER_PORT"):
        load_config(Flags(backend="mock"), {"TRINFER_PORT": "eighty"})


def test_kind_specific_options_are_checked_by_the_backend_when_the_daemon_is_built() -> None:
    config = config_from_mapping({"backends": [{**MOCK, "name": "m1", "fail": "sometimes"}]})
    with pytest.raises(ConfigError, match=r"backends\[0\] \(m1\): .*fail"):
        Daemon(config)


def test_no_config_and_no_backend_serves_the_embedded_default_or_says_how() -> None:
    try:
        config = load_config(Flags(), {})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert "trinfer serve --backend mock" in message or message == DEFAULT_HOWTO
    else:
        assert isinstance(config, Config)
        assert config.backends and config.backends[0].kind == "llamacpp"
