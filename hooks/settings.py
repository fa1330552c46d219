"""Where lockgate's settings come from, read without pydantic so `lockgate lint` stays fast.

Precedence: command-line flags > `LOCKGATE_*` environment > `[tool.lockgate]` in the nearest
pyproject.toml > defaults. The controller validates the full set with pydantic-settings
(`lockgate.controller.config`) from these same sources; the lint path reads the few keys it
needs through `lint_settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lockgate.hooks.errors import InputError, UsageError
from lockgate.hooks.records import Record

ENV_PREFIX = "LOCKGATE_"
DEFAULT_PG_VERSION = 15
DEFAULT_BRANCH = "main"
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
    import tomllib  # only when there is a file to read: its import is a few ms of `lockgate lint`

    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError.at(path, getattr(exc, "lineno", 1), getattr(exc, "colno", 1), str(exc)) from None
    table = data.get("tool", {}).get("lockgate", {})
    return path, {k.replace("-", "_"): v for k, v in table.items()}


def configured_branch(cwd: Path) -> str:
    """LOCKGATE_BRANCH, else `branch` in [tool.lockgate], else main."""
    env = environment().get("branch")
    return env or str(pyproject_table(cwd)[1].get("branch", DEFAULT_BRANCH))


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}


class LintSettings(Record):
    __slots__ = ("dir", "target_pg_version")

    def __init__(self, dir: Path, target_pg_version: int) -> None:
        self.dir = dir
        self.target_pg_version = target_pg_version


def lint_settings(*, dir: str | None = None, pg_version: int | None = None, cwd: Path | None = None) -> LintSettings:
    """The lint path's settings. A bad value in pyproject.toml is an InputError at that file; one from the
    environment or a flag is a UsageError naming the variable or the flag."""
    cwd = cwd or Path.cwd()
    source, table = pyproject_table(cwd)
    env = environment()
    raw_version: Any = DEFAULT_PG_VERSION
    where = "default"
    if pg_version is not None:
        raw_version, where = pg_version, "--pg-version"
    elif (env_version := env.get("target_pg_version")) is not None:
        raw_version, where = env_version, f"environment variable {ENV_PREFIX}TARGET_PG_VERSION"
    elif "target_pg_version" in table:
        raw_version, where = table["target_pg_version"], f"{source} [tool.lockgate] target_pg_version"
    try:
        version = int(raw_version)
    except (TypeError, ValueError):
        version = -1
    if version not in SUPPORTED_PG_VERSIONS:
        message = f"target_pg_version={raw_version!r}: expected a PostgreSQL major version 10-18"
        if source is not None and where.startswith(str(source)):
            raise InputError.at(source, _line_of(source, "target_pg_version"), 1, f"{message} ([tool.lockgate])")
        raise UsageError(f"{message} (from {where})")
    directory = dir or env.get("dir") or str(table.get("dir", "migrations"))
    return LintSettings(dir=Path(directory), target_pg_version=version)


def _line_of(path: Path, key: str) -> int:
    """The first line of `path` that sets `key` (either spelling), for the error's location."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith((key.replace("_", "-"), key)):
            return number
    return 1
