"""A models folder (``server.models_dir``): every ``.gguf`` in it becomes a llamacpp backend named after its stem.

Each file gets the ``[llamacpp_defaults]`` options, ``load = "on_demand"`` unless the defaults say otherwise, and
``embedding`` from its GGUF metadata (`adapters.llamacpp.gguf_info`). The folder is read once, when the config
is validated (a file added later is served after a restart). Explicit ``[[backends]]`` tables win:

- a file whose stem is an explicit backend's name or one of its model ids is not served from the folder;
- a file an explicit table already serves (its ``model_path`` is that file) is not served twice;

both are noted (the daemon logs the notes at start and shows them on ``/admin/status``). A file that is not a
readable GGUF is a *problem*, reported the same way, and never stops the other files from being served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import BackendConfig, ConfigError

#: Keys of ``[llamacpp_defaults]`` that are not llamacpp options but the backend table's own.
TABLE_KEYS = ("load", "keep_alive_s", "active", "queue", "priority")
#: llamacpp options a folder sets per file, never from the defaults.
PER_FILE_KEYS = ("model_path", "embedding")


@dataclass(frozen=True, slots=True)
class FolderProblem:
    """A ``.gguf`` in the folder that is not served, and why."""

    file: str
    error: str


@dataclass(frozen=True, slots=True)
class ModelsFolder:
    """What a models folder holds: the backends it adds, the files explicit tables took, the broken files."""

    path: str
    backends: tuple[BackendConfig, ...] = ()
    #: One line per file an explicit ``[[backends]]`` table took over (name clash, or the same file).
    shadowed: tuple[str, ...] = ()
    problems: tuple[FolderProblem, ...] = ()

    def status(self) -> dict[str, Any]:
        """This folder's entry in /admin/status."""
        return {
            "path": self.path,
            "models": [b.name for b in self.backends],
            "shadowed": list(self.shadowed),
            "problems": [{"file": p.file, "error": p.error} for p in self.problems],
        }


def scan_models_dir(
    path: str, table: Mapping[str, Any], explicit: Sequence[BackendConfig], build: Any
) -> ModelsFolder:
    """Read the folder at ``path`` into backends, with ``table`` (``[llamacpp_defaults]``, already checked)
    as every file's options. ``build(where, table)`` validates one backend table into a `BackendConfig`.
    """
    from adapters.llamacpp.gguf_info import UnreadableGguf, read_kind

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"server.models_dir: {path!r} is not a directory")
    taken = {name for b in explicit for name in (b.name, *b.models)}
    served_paths = {_resolved(b.options.get("model_path")) for b in explicit if b.kind == "llamacpp"}
    backends: list[BackendConfig] = []
    shadowed: list[str] = []
    problems: list[FolderProblem] = []
    for file in sorted(folder.glob("*.gguf")):
        stem = file.stem
        if stem in taken:
            shadowed.append(f"{file.name}: the [[backends]] table for {stem!r} is served instead")
            continue
        if _resolved(str(file)) in served_paths:
            shadowed.append(f"{file.name}: already served by a [[backends]] table with this model_path")
            continue
        try:
            kind = read_kind(file)
        except (UnreadableGguf, OSError) as exc:
            problems.append(FolderProblem(file.name, " ".join(str(exc).split())))
            continue
        embedding = kind.value == "embedding"
        options = {"load": "on_demand", "active": 1 if embedding else None, **table}
        entry = {k: v for k, v in options.items() if v is not None}
        entry.update(name=stem, kind="llamacpp", models=[stem], model_path=str(file), embedding=embedding)
        backends.append(build(f"models_dir file {file.name}", entry))
    return ModelsFolder(str(folder), tuple(backends), tuple(shadowed), tuple(problems))


def _resolved(path: object) -> Path | None:
    if not isinstance(path, str):
        return None
    try:
        return Path(path).expanduser().resolve()
    except OSError:
        return None


def check_defaults(table: object, option_keys: frozenset[str] | None) -> Mapping[str, Any]:
    """``[llamacpp_defaults]``: a table of llamacpp options plus `TABLE_KEYS`; never `PER_FILE_KEYS`."""
    from .config_keys import unknown_key_message

    if not isinstance(table, Mapping):
        raise ConfigError("[llamacpp_defaults] must be a table")
    known = {*(option_keys or ()), *TABLE_KEYS} - set(PER_FILE_KEYS)
    for key in table:
        if key in PER_FILE_KEYS:
            raise ConfigError(
                f"llamacpp_defaults.{key} cannot be set here: a models folder sets it per file "
                "(model_path is the file, embedding comes from its GGUF metadata)"
            )
        if option_keys is not None and key not in known:
            raise ConfigError(unknown_key_message("llamacpp_defaults", key, known))
    return MappingProxyType(dict(table))
