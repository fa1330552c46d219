"""What a rule is: code, name, severity, message, the safe alternative, and examples.

A rule's docstring is its documentation page (what breaks, which lock, the safe way); its
`bad` and `good` examples are run as tests, so docs and behaviour cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from lockgate.hooks.records import Record

if TYPE_CHECKING:
    from lockgate.hooks.rules.context import Context
    from lockgate.hooks.sqlmodel import Statement


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Finding(Record):
    __slots__ = ("column", "line", "message", "name", "path", "rule", "severity")

    def __init__(self, path: Path, line: int, column: int, rule: str, name: str, severity: Severity,
                 message: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.rule = rule  # code, e.g. "LG101"
        self.name = name  # e.g. "require-concurrent-index"
        self.severity = severity
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule} {self.message}"


class Example(Record):
    """SQL for a docs page and a test; `before` holds the up files of earlier migrations of the
    set, `pending` says they are new in the same change (not yet on the base branch); a down or
    validate example (`file`) runs after `up`."""

    __slots__ = ("before", "file", "note", "pending", "pg_version", "sql", "up")

    def __init__(self, sql: str, pg_version: int | None = None, note: str = "", file: str = "up",
                 before: tuple[str, ...] = (), pending: bool = False, up: str = "") -> None:
        self.sql = sql
        self.pg_version = pg_version
        self.note = note
        self.file = file  # the kind of migration file the SQL stands in: up, down or validate
        self.before = before
        self.pending = pending
        self.up = up


class Hit(Record):
    """A rule's verdict on a statement; line/column default to the statement's."""

    __slots__ = ("column", "line", "message")

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.message = message
        self.line = line
        self.column = column


UP_AND_DOWN = frozenset({"up", "down"})
VALIDATE_ONLY = frozenset({"validate"})
ANY_STATEMENT = "*"  # in `kinds`: the rule reads every statement
UP_ONLY = frozenset({"up"})


class Rule:
    """Base class; subclasses set the class attributes and implement `check`."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str]
    # Statement kinds (parse-tree node names) the rule looks at; the linter dispatches on them.
    kinds: ClassVar[frozenset[str]]
    # For an ALTER TABLE, the subcommands (AlterTableCmd subtypes) the rule has something to say about;
    # the linter skips the rule for an ALTER TABLE with none of them. None: every ALTER TABLE.
    alter_commands: ClassVar[frozenset[str] | None] = None
    # Which files it reads: ups and downs by default, as the controller runs both on production
    # (a down after a revert or a failed gate); style rules read only ups, and validate files
    # only the rules that hold for read-only gates.
    file_kinds: ClassVar[frozenset[str]] = UP_AND_DOWN
    bad: ClassVar[tuple[Example, ...]]
    good: ClassVar[tuple[Example, ...]]
    # squawk rules this one covers, for the coverage table.
    squawk: ClassVar[tuple[str, ...]] = ()

    def check(self, stmt: Statement, ctx: Context) -> Iterable[Hit | str]:
        raise NotImplementedError
