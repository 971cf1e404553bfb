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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keys of ``[llamacpp_defaults]`` that are not llamacpp options but the backend table's own.
TABLE_KEYS = ("load", "keep_alive_s", "active", "queue", "priority")
#: llamacpp options a folder sets per file, never from the defaults.
PER_FILE_KEYS = ("model_path", "embedding")


class NotAFolder(ValueError):
    """``models_dir`` names no directory (the config reports it as the bad key)."""


@dataclass(frozen=True, slots=True)
class FolderProblem:
    """A ``.gguf`` in the folder that is not served, and why."""

    file: str
    error: str


@dataclass(frozen=True, slots=True)
class ModelsFolder:
    """What a models folder holds: the backend tables it adds, the files explicit tables took, broken files."""

    path: str
    #: One ``[[backends]]``-shaped table per servable file (the config validates them like any other).
    tables: tuple[Mapping[str, Any], ...] = ()
    #: One line per file an explicit ``[[backends]]`` table took over (name clash, or the same file).
    shadowed: tuple[str, ...] = ()
    problems: tuple[FolderProblem, ...] = field(default=())

    @property
    def models(self) -> list[str]:
        return [str(t["name"]) for t in self.tables]

    def status(self) -> dict[str, Any]:
        """This folder's entry in /admin/status."""
        return {
            "path": self.path,
            "models": self.models,
            "shadowed": list(self.shadowed),
            "problems": [{"file": p.file, "error": p.error} for p in self.problems],
        }


def scan_models_dir(
    path: str, defaults: Mapping[str, Any], taken: Collection[str], served: Collection[str]
) -> ModelsFolder:
    """Read the folder at ``path``: one backend table per servable file, ``defaults`` (``[llamacpp_defaults]``,
    already checked) as its options. ``taken``: the explicit tables' names and model ids; ``served``: the files
    they load (``model_path``). Raises `NotAFolder`.
    """
    from adapters.llamacpp.gguf_info import UnreadableGguf, read_kind

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NotAFolder(f"server.models_dir: {path!r} is not a directory")
    served_paths = {_resolved(p) for p in served}
    tables: list[Mapping[str, Any]] = []
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
        except UnreadableGguf as exc:
            problems.append(FolderProblem(file.name, str(exc)))
            continue
        embedding = kind.value == "embedding"
        table: dict[str, Any] = {"load": "on_demand", **({"active": 1} if embedding else {}), **defaults}
        table.update(name=stem, kind="llamacpp", models=[stem], model_path=str(file), embedding=embedding)
        tables.append(table)
    return ModelsFolder(str(folder), tuple(tables), tuple(shadowed), tuple(problems))


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return None
