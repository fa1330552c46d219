"""Migrations that already reached the target branch stay as they were.

A migration on the branch may already be applied somewhere; editing it afterwards means the
database and the repository disagree without anyone noticing. The working tree (which is what
pre-commit leaves in place while the hooks run: the commit being made) is compared with the
base revision, by default `origin/<branch>` when that exists, else `<branch>`.

Deleting a whole migration (all its files) is how a revert reads, and a revert is how lockgate
rolls a migration back, so that is a note, not a finding; deleting part of one is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.hooks.migrationset import FILE_NAME
from lockgate.hooks.rules.base import Finding, Severity

APPLIED_EDITED = ("LG905", "applied-migration-edited")


@dataclass(slots=True)
class Immutability:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def first_difference(old: bytes, new: bytes) -> int:
    """1-based line of the first line that differs."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for n, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            return n
    return min(len(old_lines), len(new_lines)) + 1


def _finding(path: Path, line: int, message: str) -> Finding:
    return Finding(path, line, 1, APPLIED_EDITED[0], APPLIED_EDITED[1], Severity.ERROR, message)


def check_immutability(directory: Path, *, base: str | None, branch: str) -> Immutability:
    """LG905 for every migration file at `base` that the working tree edited or deleted."""
    import git  # gitpython costs tens of milliseconds to import; only this check needs it

    result = Immutability()
    try:
        repo = git.Repo(directory, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        result.notes.append(f"{directory} is not in a git repository: applied migrations not checked for edits")
        return result
    candidates = [base] if base else [f"origin/{branch}", branch]
    found = _resolve(repo, candidates)
    if found is None:
        result.notes.append(f"{' or '.join(candidates)} does not exist: applied migrations not checked for edits")
        return result
    ref, commit = found
    assert repo.working_tree_dir is not None
    relative = directory.resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    try:
        tree = commit.tree if relative == "." else commit.tree / relative
    except KeyError:
        return result  # the base has no migrations yet
    return compare(tree.blobs, directory, ref=ref, branch=branch)


def compare(blobs: Any, directory: Path, *, ref: str, branch: str) -> Immutability:
    """Compare the base's migration files (git blobs) with the files in `directory`."""
    result = Immutability()
    deleted: dict[str, list[Path]] = {}
    at_base: dict[str, int] = {}
    for blob in blobs:
        m = FILE_NAME.match(blob.name)
        if not m:
            continue
        migration = f"{m['version']}_{m['name']}"
        at_base[migration] = at_base.get(migration, 0) + 1
        path = directory / blob.name
        if not path.is_file():
            deleted.setdefault(migration, []).append(path)
            continue
        old, new = blob.data_stream.read(), path.read_bytes()
        if old != new:
            result.findings.append(_finding(
                path, first_difference(old, new),
                f"{blob.name} is already on {ref} and was edited; write a new migration instead",
            ))
    for migration, paths in sorted(deleted.items()):
        if len(paths) == at_base[migration]:
            result.notes.append(f"{migration} was removed: lockgate rolls it back when this reaches {branch}")
            continue
        result.findings.extend(
            _finding(path, 1, f"{path.name} is already on {ref} and was deleted; "
                              f"remove the whole migration (a revert) or restore it")
            for path in paths
        )
    return result


def _resolve(repo: Any, candidates: list[str]) -> tuple[str, Any] | None:
    """The first of `candidates` that names a commit, with that commit."""
    import git

    for ref in candidates:
        try:
            return ref, repo.commit(ref)
        except (git.BadName, ValueError):
            continue
    return None
