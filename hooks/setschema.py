"""Where the schema model's migration set comes from: a directory on disk (lint, check) or a
set read from git (the controller's approval), and which of its migrations are pending.

On disk the pending part of the change is what the base branch does not have yet (the same
base `lockgate check` compares with); the controller passes the migrations it has not applied.
A file that is not named as a migration is linted on its own, without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from lockgate.hooks.errors import InputError
from lockgate.hooks.migrationset import FILE_NAME, MigrationFile, MigrationSet, decode, version_sort_key
from lockgate.hooks.schemamodel import SchemaView, SetHistory
from lockgate.hooks.settings import configured_branch
from lockgate.hooks.sqlmodel import SqlFile, parse_sql


def _parsed(path: Path) -> SqlFile | None:
    """An up file of the set, or None when it cannot be read (it is reported when it is linted)."""
    try:
        return parse_sql(path, decode(path, path.read_bytes()))
    except (OSError, InputError):
        return None


def _git(directory: Path, *args: str) -> str | None:
    """git's output, or None when it fails. The git command line, not gitpython: importing that
    alone would cost a pre-commit lint of one file a good part of its 100 ms."""
    import subprocess

    try:
        done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _base_versions(directory: Path) -> frozenset[str] | None:
    """Versions of the migrations under `directory` on the base branch (`origin/<branch>`, else
    `<branch>`, as `lockgate check` compares with); None when there is no base to compare with."""
    branch = configured_branch(Path.cwd())
    for ref in (f"origin/{branch}", branch):
        # One git process a candidate (a pre-commit lint waits for each): listing a ref that is not there
        # fails, as asking for it would.
        listing = _git(directory, "ls-tree", "--name-only", f"{ref}^{{commit}}", "./")
        if listing is not None:
            return frozenset(m["version"] for line in listing.splitlines()
                             if (m := FILE_NAME.match(line.rpartition("/")[2])))
    return None


@cache
def _directory_history(directory: Path) -> SetHistory:
    ups = sorted(
        ((m["version"], path) for path in directory.iterdir()
         if (m := FILE_NAME.match(path.name)) and m["kind"] == "up"),
        key=lambda item: version_sort_key(item[0]),
    )

    def pending() -> frozenset[str]:
        at_base = _base_versions(directory)
        # Without a base nothing counts as pending: the rules keep their conservative verdicts.
        return frozenset() if at_base is None else frozenset(v for v, _ in ups) - at_base

    return SetHistory([(v, _loader(p)) for v, p in ups], pending)


def _loader(path: Path) -> Callable[[], SqlFile | None]:
    return lambda: _parsed(path)


@cache
def _history_of(directory: Path) -> SetHistory | None:
    """The set in `directory` as given (resolved once: a lint of 1,000 files asks 1,000 times)."""
    return _directory_history(directory.resolve()) if directory.is_dir() else None


def view_for(path: Path) -> SchemaView | None:
    """The schema the migration `path` belongs to runs against; None for a file outside a set."""
    m = FILE_NAME.match(path.name)
    if m is None:
        return None
    history = _history_of(path.parent)
    return None if history is None else SchemaView(history, m["version"])


def set_history(migration_set: MigrationSet, pending: Iterable[str]) -> SetHistory:
    """The history of a set already in memory (read from git), with the versions not yet applied."""
    waiting = frozenset(pending)
    ups = [(m.version, _file_loader(m.up)) for m in migration_set.migrations if "up" in m.files]
    return SetHistory(ups, lambda: waiting)


def _file_loader(up: MigrationFile) -> Callable[[], SqlFile | None]:
    def load() -> SqlFile | None:
        try:
            return up.sql
        except InputError:
            return None

    return load
