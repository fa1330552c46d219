"""Where lockgate's settings come from, read without pydantic so `lockgate lint` stays fast.

Precedence: command-line flags > `LOCKGATE_*` environment > `[tool.lockgate]` in the nearest
pyproject.toml > defaults. The controller validates the full set with pydantic-settings
(`lockgate.controller.config`) from these same sources; the lint path reads the few keys it
needs through `lint_settings`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.hooks.errors import InputError

ENV_PREFIX = "LOCKGATE_"
DEFAULT_PG_VERSION = 15
SUPPORTED_PG_VERSIONS = range(10, 19)


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def pyproject_table(start: Path) -> tuple[Path | None, dict[str, Any]]:
    """The `[tool.lockgate]` table of the nearest pyproject.toml, keys with `-` as `_`."""
    path = find_pyproject(start)
    if path is None:
        return None, {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError.at(path, getattr(exc, "lineno", 1), getattr(exc, "colno", 1), str(exc)) from None
    table = data.get("tool", {}).get("lockgate", {})
    return path, {k.replace("-", "_"): v for k, v in table.items()}


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}


@dataclass(frozen=True, slots=True)
class LintSettings:
    dir: Path
    target_pg_version: int


def lint_settings(*, dir: str | None = None, pg_version: int | None = None, cwd: Path | None = None) -> LintSettings:
    """The lint path's settings; a bad value is an InputError naming the key."""
    cwd = cwd or Path.cwd()
    source, table = pyproject_table(cwd)
    env = environment()
    merged: dict[str, tuple[Any, str]] = {k: (v, f"{source} [tool.lockgate] {k}") for k, v in table.items()}
    merged.update({k: (v, f"environment {ENV_PREFIX}{k.upper()}") for k, v in env.items()})
    raw_version, where = merged.get("target_pg_version", (DEFAULT_PG_VERSION, "default"))
    if pg_version is not None:
        raw_version, where = pg_version, "--pg-version"
    try:
        version = int(raw_version)
    except (TypeError, ValueError):
        version = -1
    if version not in SUPPORTED_PG_VERSIONS:
        raise InputError.at(
            Path(where.split(" ")[0]) if source else Path("settings"), 1, 1,
            f"target_pg_version={raw_version!r} ({where}): expected a PostgreSQL major version 10-18",
        )
    directory = dir or str(merged.get("dir", ("migrations", ""))[0])
    return LintSettings(dir=Path(directory), target_pg_version=version)
