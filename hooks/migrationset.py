"""Discover `<version>_<name>.{up,down,validate}.sql` triples and order them by version."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lockgate.hooks.errors import InputError, Problem
from lockgate.hooks.sqlmodel import SqlFile, parse_sql

KINDS = ("up", "down", "validate")
# golang-migrate's grammar: digits, `_`, a title, the kind. The title may hold anything but a path separator
# (dots included: `0002_1.7.0_schema.up.sql`); whitespace and control characters are refused too, because
# names are written one per line, space-separated, in lockgate.sum and in every one-line message.
FILE_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[^/\\\s\x00-\x1f\x7f]+?)\.(?P<kind>up|down|validate)\.sql$")
FILE_NAME_GRAMMAR = "<digits>_<title>.(up|down|validate).sql, the title without path separators or whitespace"
# What `lockgate new` writes: a lowercase slug.
NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
SUM_FILE = "lockgate.sum"
# A migrations folder is a plain folder of plain files. Anything else would read as "every
# migration deleted" (git stores a symlink as one blob), or make lockgate read files from
# outside the repository, so it is bad input, never an empty set.
NOT_A_FOLDER = {
    "symlink": "the migrations folder is a symbolic link; lockgate reads a plain folder: move the files back",
    "submodule": "the migrations folder is a git submodule; lockgate reads a plain folder of this repository",
    "file": "the migrations folder is a file, not a folder",
}
LINKED_FILE = "a migration file is a symbolic link; lockgate reads plain files only: replace it with the file itself"


class MigrationFile:
    __slots__ = ("_parsed", "path", "text")

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._parsed: SqlFile | None = None

    @property
    def sql(self) -> SqlFile:
        """The parsed file; parsing happens on first use."""
        if self._parsed is None:
            self._parsed = parse_sql(self.path, self.text)
        return self._parsed

    @property
    def checksum(self) -> str:
        # Imported here: `lockgate lint` reads files through this module and never hashes them,
        # and loading OpenSSL costs milliseconds of its 100 ms budget.
        import hashlib

        return hashlib.sha256(self.text.encode()).hexdigest()


class Migration:
    __slots__ = ("files", "name", "version")

    def __init__(self, version: str, name: str) -> None:
        self.version = version
        self.name = name
        self.files: dict[str, MigrationFile] = {}

    @property
    def id(self) -> str:
        return f"{self.version}_{self.name}"

    @property
    def up(self) -> MigrationFile:
        return self.files["up"]

    @property
    def down(self) -> MigrationFile:
        return self.files["down"]

    @property
    def validate(self) -> MigrationFile:
        return self.files["validate"]

    @property
    def description(self) -> str:
        return self.up.sql.header.get("Description", "")


class MigrationSet:
    __slots__ = ("directory", "migrations")

    def __init__(self, directory: Path, migrations: list[Migration]) -> None:
        self.directory = directory
        self.migrations = migrations

    def by_version(self) -> dict[str, Migration]:
        return {m.version: m for m in self.migrations}

    def files(self) -> list[MigrationFile]:
        return [m.files[k] for m in self.migrations for k in KINDS if k in m.files]


def decode(path: Path, data: bytes) -> str:
    """UTF-8 text, or an InputError at the line of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError.at(path, line, column, f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


def version_sort_key(version: str) -> tuple[int, str]:
    return int(version), version


def load(directory: Path, *, require_triples: bool = True) -> MigrationSet:
    """Read every migration under `directory`; all structural problems are raised together.

    SQL is parsed lazily (`MigrationFile.sql`), so callers that only need names or checksums
    pay nothing for parsing.
    """
    if directory.is_symlink():
        raise InputError.at(directory, 1, 1, NOT_A_FOLDER["symlink"])
    if not directory.is_dir():
        raise InputError.at(directory, 1, 1, "migrations directory not found")
    paths = [path for path in sorted(directory.iterdir()) if _is_sql(path) and (path.is_symlink() or not path.is_dir())]
    linked = [Problem(path, 1, 1, LINKED_FILE) for path in paths if path.is_symlink()]
    if linked:
        raise InputError(linked)
    return from_files(directory, ((path, path.read_bytes()) for path in paths), require_triples=require_triples)


def _is_sql(path: Path) -> bool:
    return path.suffix == ".sql" and not path.name.startswith(".")


def from_files(
    directory: Path, files: Iterable[tuple[Path, bytes]], *, require_triples: bool = True
) -> MigrationSet:
    """`load` over files given as (path, content) in name order, e.g. blobs read from a git tree."""
    problems: list[Problem] = []
    by_version: dict[str, Migration] = {}
    # (version, kind) of files that exist but cannot be read: reported once, not again as missing.
    unreadable: set[tuple[str, str]] = set()
    for path, data in files:
        if not _is_sql(path):
            continue
        m = FILE_NAME.match(path.name)
        if not m:
            problems.append(Problem(
                path, 1, 1,
                f"bad migration file name: expected {FILE_NAME_GRAMMAR}",
            ))
            continue
        try:
            text = decode(path, data)
        except InputError as exc:
            problems.extend(exc.problems)
            unreadable.add((m["version"], m["kind"]))
            continue
        version, name, kind = m["version"], m["name"], m["kind"]
        migration = by_version.setdefault(version, Migration(version, name))
        if migration.name != name:
            problems.append(Problem(
                path, 1, 1, f"duplicate version {version}: also used by {migration.id}",
            ))
            continue
        migration.files[kind] = MigrationFile(path, text)
    migrations = sorted(by_version.values(), key=lambda mig: version_sort_key(mig.version))
    if require_triples:
        for migration in migrations:
            present = next(iter(migration.files.values())).path
            for kind in KINDS:
                if kind not in migration.files and (migration.version, kind) not in unreadable:
                    problems.append(Problem(
                        present, 1, 1,
                        f"{migration.id} has no {kind} file ({migration.id}.{kind}.sql)",
                    ))
    seen_numbers: dict[int, str] = {}
    for migration in migrations:
        other = seen_numbers.setdefault(int(migration.version), migration.version)
        if other != migration.version:
            problems.append(Problem(
                next(iter(migration.files.values())).path, 1, 1,
                f"version {migration.version} is the same number as {other}",
            ))
    if problems:
        raise InputError(problems)
    return MigrationSet(directory, migrations)


def parse_all(migration_set: MigrationSet) -> None:
    """Parse every file, raising all syntax and directive errors together."""
    problems: list[Problem] = []
    for f in migration_set.files():
        try:
            f.sql  # noqa: B018 - parsing is the point
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InputError(problems)
