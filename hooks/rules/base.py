"""What a rule is: code, name, severity, message, the safe alternative, and examples.

A rule's docstring is its documentation page (what breaks, which lock, the safe way); its
`bad` and `good` examples are run as tests, so docs and behaviour cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from lockgate.hooks.rules.context import Context
    from lockgate.hooks.sqlmodel import Statement


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    line: int
    column: int
    rule: str  # code, e.g. "LG101"
    name: str  # e.g. "require-concurrent-index"
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule} {self.message}"


@dataclass(frozen=True, slots=True)
class Example:
    """SQL for a docs page and a test; `setup` is SQL that already ran (existing tables)."""

    sql: str
    pg_version: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule's verdict on a statement; line/column default to the statement's."""

    message: str
    line: int | None = None
    column: int | None = None


class Rule:
    """Base class; subclasses set the class attributes and implement `check`."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str]
    # Statement kinds (parse-tree node names) the rule looks at; the linter dispatches on them.
    kinds: ClassVar[frozenset[str]]
    # Which files it reads: the forward migration by default; destructive rules also read downs.
    file_kinds: ClassVar[frozenset[str]] = frozenset({"up"})
    bad: ClassVar[tuple[Example, ...]]
    good: ClassVar[tuple[Example, ...]]
    # squawk rules this one covers, for the coverage table.
    squawk: ClassVar[tuple[str, ...]] = ()

    def check(self, stmt: Statement, ctx: Context) -> Iterable[Hit | str]:
        raise NotImplementedError
