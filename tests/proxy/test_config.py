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


def test_model_id_flag_serves_a_file_or_model_under_a_chosen_id() -> None:
    (llama,) = load_config(Flags(model="/models/SmolLM2-135M.Q8_0.gguf", model_id="assistant"), {}).backends
    assert (llama.kind, llama.models) == ("llamacpp", ("assistant",))
    assert dict(llama.options) == {"model_path": "/models/SmolLM2-135M.Q8_0.gguf"}
    (claude,) = load_config(Flags(backend="anthropic", model="claude-haiku-4-5", model_id="fast"), {}).backends
    assert claude.models == ("fast",)
    assert dict(claude.options) == {"model_map": {"fast": "claude-haiku-4-5"}}
    (mock,) = load_config(Flags(backend="mock"), {"TRINFER_MODEL_ID": "echo-2"}).backends
    assert mock.models == ("echo-2",)
    with pytest.raises(ConfigError, match="--model-id needs --model"):
        load_config(Flags(model_id="assistant"), {})
    with pytest.raises(ConfigError, match="--model-id must not be empty"):
        load_config(Flags(backend="mock", model_id=" "), {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"backends": [{"kind": "mock", "modles": ["m"]}]},
            r"unknown key backends\[0\].modles: did you mean 'models'\?",
        ),
        ({"backends": [{**MOCK, "prioity": 1}]}, r"unknown key backends\[0\].prioity: did you mean 'priority'\?"),
        (
            {"backends": [{**MOCK, "token_delay": 5}]},
            r"backends\[0\].token_delay: did you mean 'token_delay_ms'\?",
        ),
        (
            {"backends": [{"kind": "openai", "models": ["m"], "base_url": ["http://127.0.0.1:9/v1"]}]},
            r"backends\[0\].base_url: did you mean 'base_urls'\?",
        ),
        (
            {"backends": [{"kind": "llamacpp", "models": ["m"], "model_pth": "m.gguf"}]},
            r"unknown key backends\[0\].model_pth: did you mean 'model_path'\?",
        ),
        (
            {"backends": [{"kind": "anthropic", "models": ["m"], "modelmap": {}}]},
            r"unknown key backends\[0\].modelmap: did you mean 'model_map'\?",
        ),
        ({"server": {"prot": 1}, "backends": [MOCK]}, r"unknown key server.prot: did you mean 'port'\?"),
        ({"server": {"api_key": ["k"]}, "backends": [MOCK]}, r"server.api_key: did you mean 'api_keys'\?"),
        ({"server": {"colour": 1}, "backends": [MOCK]}, r"unknown key server.colour \(known keys: .*admin_port"),
        ({"servr": {}, "backends": [MOCK]}, r"unknown top-level key 'servr': did you mean 'server'\?"),
        ({"backend": [MOCK]}, r"unknown top-level key 'backend': did you mean 'backends'\?"),
    ],
)
def test_unknown_keys_are_named_with_the_closest_known_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_mapping(data)
    assert "\n" not in str(caught.value)


def test_a_backend_kind_without_a_key_list_still_checks_its_own_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.mock import MockBackend

    monkeypatch.setattr(MockBackend, "option_keys", None)
    config = config_from_mapping({"backends": [{**MOCK, "token_delay": 5}]})
    with pytest.raises(ConfigError, match="unknown mock option 'token_delay'"):
        Daemon(config)


@pytest.mark.parametrize(
    ("origins", "expected"),
    [
        (
            ["HTTPS://App.Example.com", "http://localhost:5173"],
            ("https://app.example.com", "http://localhost:5173"),
        ),
        (["http://[::1]:8000"], ("http://[::1]:8000",)),
        ([], ()),
    ],
)
def test_cors_origins_are_normalised(origins: list[str], expected: tuple[str, ...]) -> None:
    config = config_from_mapping({"server": {"cors_allow_origins": origins}, "backends": [MOCK]})
    assert config.server.cors_allow_origins == expected


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"cors_allow_origins": ["*"]}, r'cors_allow_origins = \["\*"\] needs API keys'),
        ({"cors_allow_origins": ["*", "https://a.example"]}, r'"\*" \(any origin\) must be the only entry'),
        ({"cors_allow_origins": ["https://a.example/"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["https://a.example/app"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["a.example"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["ftp://a.example"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["https://u@a.example"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["https://a.example:99999"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": ["https://a.example:0"]}, r"cors_allow_origins\[0\] must be an origin"),
        ({"cors_allow_origins": "https://a.example"}, "cors_allow_origins must be a list"),
    ],
)
def test_bad_cors_origins_are_refused(server: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_mapping({"server": server, "backends": [MOCK]})


def test_any_origin_is_allowed_with_keys_and_origins_come_from_the_environment() -> None:
    keyed = config_from_mapping(
        {"server": {"cors_allow_origins": ["*"], "api_keys": ["sk-a"]}, "backends": [MOCK]}
    )
    assert keyed.server.cors_allow_origins == ("*",)
    env = {"TRINFER_CORS_ALLOW_ORIGINS": "https://a.example, http://localhost:3000"}
    config = load_config(Flags(backend="mock"), env)
    assert config.server.cors_allow_origins == ("https://a.example", "http://localhost:3000")


def test_api_key_file_keys_are_added(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("sk-one\n# comment\n\nsk-two\n")
    config = config_from_mapping(
        {"server": {"api_keys": ["sk-zero"], "api_key_file": str(keys)}, "backends": [MOCK]}
    )
    assert config.api_keys == ("sk-zero", "sk-one", "sk-two")
    with pytest.raises(ConfigError, match="api_key_file"):
        config_from_mapping({"server": {"api_key_file": str(tmp_path / "none")}, "backends": [MOCK]})


def test_api_key_file_comments_start_at_any_hash_after_whitespace(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("   # old key\n\tsk-prod   # the production key\nsk-a#b\n  sk-padded  \n#sk-gone\n")
    config = config_from_mapping({"server": {"api_key_file": str(keys)}, "backends": [MOCK]})
    assert config.api_keys == ("sk-prod", "sk-a#b", "sk-padded")


@pytest.mark.parametrize("text", ["   # old key\n", "\t# a\n\n  #b\n", "", "\n \n"])
def test_an_api_key_file_without_a_key_is_refused_even_on_loopback(tmp_path: Path, text: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(text)
    for host in ("127.0.0.1", "0.0.0.0"):
        with pytest.raises(ConfigError, match="holds no key") as caught:
            config_from_mapping({"server": {"host": host, "api_key_file": str(keys)}, "backends": [MOCK]})
        assert "old key" not in str(caught.value)


def test_an_api_key_file_line_with_inner_whitespace_is_refused_by_line_number(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("sk-good\nsk-secret half\n")
    with pytest.raises(ConfigError, match=r"line 2 of .* has whitespace inside its key") as caught:
        config_from_mapping({"server": {"api_key_file": str(keys)}, "backends": [MOCK]})
    assert "sk-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"backends": []}, "at least one"),
        ({}, "at least one"),
        ({"server": [], "backends": [MOCK]}, r"\[server\] must be a table"),
        ({"servers": {}, "backends": [MOCK]}, "unknown top-level key 'servers': did you mean 'server'"),
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
