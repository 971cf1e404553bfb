"""The shape of proxy/: its modules import each other without a circle (also not through ``TYPE_CHECKING``),
and only the CLI knows the Daemon - the views are given `proxy.services.Services` instead."""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parents[2] / "proxy"


def proxy_imports(path: Path) -> set[str]:
    """The proxy modules ``path`` imports anywhere in its body (relative or absolute)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:
                found.update(alias.name for alias in node.names)
            elif node.level == 1 and node.module is not None:
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module is not None and node.module.startswith("proxy."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("proxy."))
    return found


def graph() -> dict[str, set[str]]:
    return {path.stem: proxy_imports(path) for path in sorted(PROXY.glob("*.py"))}


def test_proxy_modules_import_each_other_without_a_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, "import circle: " + " -> ".join([*path, module])
        if module in done:
            return
        for imported in sorted(edges.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in edges:
        visit(module, ())
    assert {"pipeline", "chat", "ws", "apps", "daemon"} <= done


def test_only_the_cli_imports_the_daemon() -> None:
    assert sorted(module for module, imported in graph().items() if "daemon" in imported) == ["cli"]
