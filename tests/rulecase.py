"""Lint SQL the way `lockgate lint` does, for the per-family rule tests.

Migrations are real files in a temporary directory linted through `lint_paths`, so a down file
inherits what its up created exactly as it does for users.
"""

from __future__ import annotations

from pathlib import Path

from lockgate.hooks.lint import lint_paths
from lockgate.hooks.rules.base import Finding

VERSION = "20250101000000_change"


def lint_migration(directory: Path, up: str, down: str | None = None, *, pg_version: int = 16) -> list[Finding]:
    """Findings for one migration written as files (`….up.sql`, optionally `….down.sql`)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{VERSION}.up.sql"]
    paths[0].write_text(up)
    if down is not None:
        paths.append(directory / f"{VERSION}.down.sql")
        paths[1].write_text(down)
    result = lint_paths(paths, pg_version=pg_version)
    assert not result.bad_input, [str(f) for f in result.findings]
    return result.findings


def codes(findings: list[Finding], *, kind: str | None = None) -> list[str]:
    """Rule codes found, in order; only in the `kind` ("up"/"down") file when given."""
    return [f.rule for f in findings if kind is None or f.path.name.endswith(f".{kind}.sql")]


def found(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.rule == code]
