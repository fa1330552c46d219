"""`lockgate.sum`: chained checksums of every migration file, in apply order.

Each line's hash covers the file and every line before it, so two branches that both add
migrations touch the same lines and conflict in git, and inserting a migration before ones
already summed changes the lines after it. The first line sums the whole file.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from lockgate.hooks.errors import InputError
from lockgate.hooks.migrationset import SUM_FILE, MigrationSet


def _h1(digest: bytes) -> str:
    return "h1:" + base64.b64encode(digest).decode()


def compute(migration_set: MigrationSet) -> list[tuple[str, str]]:
    """(file name, chained hash) for every file, in apply order."""
    chain = hashlib.sha256()
    rows: list[tuple[str, str]] = []
    for f in migration_set.files():
        chain.update(f.path.name.encode() + b"\0" + f.text.encode() + b"\0")
        rows.append((f.path.name, _h1(chain.copy().digest())))
    return rows


def render(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"{name} {digest}\n" for name, digest in rows)
    return _h1(hashlib.sha256(body.encode()).digest()) + "\n" + body


def write(migration_set: MigrationSet) -> Path:
    path = migration_set.directory / SUM_FILE
    path.write_text(render(compute(migration_set)))
    return path


@dataclass(frozen=True, slots=True)
class SumProblem:
    path: Path
    line: int
    message: str
    # What `lockgate check` suggests after the message; None when the message already says it.
    fix: str | None = "run `lockgate hash` if that was intended"


def read(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("h1:"):
        raise InputError.at(path, 1, 1, "not a lockgate.sum file (first line must be h1:…)")
    rows: list[tuple[str, str]] = []
    for n, line in enumerate(lines[1:], start=2):
        name, _, digest = line.partition(" ")
        if not digest.startswith("h1:"):
            raise InputError.at(path, n, 1, "expected '<file> h1:<hash>'")
        rows.append((name, digest))
    if render(rows).splitlines()[0] != lines[0]:
        raise InputError.at(path, 1, 1, "lockgate.sum was edited by hand (its total does not match its lines)")
    return rows


def verify(migration_set: MigrationSet) -> list[SumProblem]:
    """What differs between the files and lockgate.sum; empty when they match."""
    path = migration_set.directory / SUM_FILE
    if not path.exists():
        return [SumProblem(path, 1, "lockgate.sum is missing: run `lockgate hash`", fix=None)]
    recorded = read(path)
    actual = compute(migration_set)
    if recorded == actual:
        return []
    recorded_names = [name for name, _ in recorded]
    actual_names = [name for name, _ in actual]
    problems = [
        SumProblem(path, recorded_names.index(name) + 2, f"{name} was removed")
        for name in recorded_names
        if name not in actual_names
    ]
    for at, name in enumerate(actual_names):
        if name not in recorded_names:
            later = next((n for n in actual_names[at + 1:] if n in recorded_names), None)
            where = f" before already-summed {later}" if later else ""
            problems.append(SumProblem(migration_set.directory / name, 1, f"{name} was added{where}"))
    if not problems and recorded_names != actual_names:
        problems.append(SumProblem(path, 2, "migrations were reordered"))
    if not problems:
        first = next(i for i, (a, r) in enumerate(zip(actual, recorded, strict=False)) if a != r)
        name = actual_names[first]
        problems.append(SumProblem(migration_set.directory / name, 1, f"{name} was edited after `lockgate hash`"))
    return problems
