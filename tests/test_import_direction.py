"""Imports run one way: lockgate.hooks ← lockgate.controller core ← lockgate.controller.commands."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _breaches(folder: str, forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in sorted(_imported(path))
        if name == forbidden or name.startswith(f"{forbidden}.")
    ]


def test_the_hooks_import_nothing_of_the_controller() -> None:
    assert _breaches("hooks", "lockgate.controller") == []


def test_the_controller_core_imports_no_command() -> None:
    core = [b for b in _breaches("controller", "lockgate.controller.commands") if "/commands/" not in b]
    assert core == []
