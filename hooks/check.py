"""`lockgate check`: the migration set is complete, its rollbacks cover their ups, it matches
lockgate.sum, and what already reached the branch was not edited.

Findings (exit 1, codes in `CHECK_CODES`) are what the author must write or fix in a set
lockgate can read. Bad input (exit 2, via InputError) is a set lockgate cannot read unambiguously: a file name
that is not `<version>_<name>.<kind>.sql`, a version used by two names, a file that is not
UTF-8, SQL that does not parse, a malformed lockgate.sum. Warnings are printed but do not fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lockgate.hooks import migrationset, sumfile
from lockgate.hooks.coverage import COVERAGE, IRREVERSIBLE, check_coverage
from lockgate.hooks.immutability import APPLIED_EDITED, check_immutability
from lockgate.hooks.migrationset import Migration, MigrationSet
from lockgate.hooks.rules.base import Finding, Severity
from lockgate.hooks.setschema import view_for

REQUIRE_DOWN = ("LG901", "require-down")
REQUIRE_VALIDATE = ("LG902", "require-validate")
SUM_MISMATCH = ("LG904", "sum-mismatch")
ORPHAN = ("LG907", "orphan-file")


@dataclass(frozen=True, slots=True)
class CheckCode:
    """What the docs and reports say about one of check's finding codes."""

    code: str
    name: str
    severity: Severity
    summary: str
    doc: str


def _code(rule: tuple[str, str], summary: str, doc: str, severity: Severity = Severity.ERROR) -> CheckCode:
    return CheckCode(rule[0], rule[1], severity, summary, doc)


CHECK_CODES = (
    _code(REQUIRE_DOWN, "an up has no down file, or the down has no SQL statement",
          "Every migration needs a rollback: lockgate runs it when validation fails after steps were "
          "committed, and when the migration is reverted in git. A down of comments only does nothing."),
    _code(REQUIRE_VALIDATE, "an up has no validate file, or it has no SQL statement",
          "The validate file holds the gates lockgate runs after the up; without one a broken backfill "
          "is committed silently."),
    _code(COVERAGE, "the down does not undo something the up does",
          "The up and down parse trees are compared: every object the up creates or changes (table, "
          "column, index, constraint, enum value, function, view, trigger, sequence, schema, default, "
          "NOT NULL, column type, rename) must be dropped or restored by the down. Dropping an object "
          "also drops what lives in it (a column its default and constraints, a table its indexes). "
          "`lockgate verify-rollback` proves the round trip on a real database."),
    _code(SUM_MISMATCH, "the migration files differ from lockgate.sum",
          "lockgate.sum chains every file's hash in apply order; an edited, added, removed or "
          "re-ordered file changes it. Run `lockgate hash` after an intended change."),
    _code(APPLIED_EDITED, "a migration already on the target branch was edited or partly deleted",
          "Migrations that reached the branch may be applied; edit one and the database and the "
          "repository disagree. Write a new migration instead, or revert the whole migration."),
    _code(IRREVERSIBLE, "the up drops data or changes rows that the down cannot bring back",
          "DROP TABLE/COLUMN/SEQUENCE/SCHEMA and data changes (UPDATE, DELETE, INSERT, TRUNCATE) on "
          "existing tables cannot be undone by DDL. A backfill of a column the down drops needs no "
          "undo. Accept a deliberate one with `-- lockgate:ignore LG906 -- reason` above the statement.",
          Severity.WARNING),
    _code(ORPHAN, "a down or validate file has no up file",
          "A rollback or validation without its forward migration is a leftover or a typo in a name."),
)


def _error(rule: tuple[str, str], path: Path, message: str, line: int = 1) -> Finding:
    return Finding(path, line, 1, rule[0], rule[1], Severity.ERROR, message)


# The files every up needs beside it, and what each is for.
_COMPANIONS = (("down", REQUIRE_DOWN, "undo the up"), ("validate", REQUIRE_VALIDATE, "check the up worked"))


def pair_findings(migration: Migration) -> list[Finding]:
    """LG901/LG902/LG907: the up has a down and a validate file, each with SQL in it."""
    if "up" not in migration.files:
        return [
            _error(ORPHAN, f.path, f"{f.path.name} has no {migration.id}.up.sql: add the up or remove this file")
            for f in migration.files.values()
        ]
    findings = []
    for kind, rule, purpose in _COMPANIONS:
        expected = f"{migration.id}.{kind}.sql"
        if kind not in migration.files:
            message = f"{migration.id} has no {kind} file: write {expected} to {purpose}"
            findings.append(_error(rule, migration.up.path, message))
        elif migration.files[kind].sql.is_empty:
            message = f"{expected} has no SQL statement: write SQL to {purpose}"
            findings.append(_error(rule, migration.files[kind].path, message))
    return findings


def sum_findings(migration_set: MigrationSet) -> list[Finding]:
    return [_error(SUM_MISMATCH, p.path, f"{p.message}; {p.fix}" if p.fix else p.message, p.line)
            for p in sumfile.verify(migration_set)]


@dataclass(frozen=True, slots=True)
class CheckResult:
    findings: list[Finding]
    notes: list[str]  # what was not checked and why, and reverts seen

    @property
    def failed(self) -> bool:
        return any(f.severity is Severity.ERROR for f in self.findings)


def check(directory: Path, *, only: Iterable[Path] = (), base: str | None, branch: str) -> CheckResult:
    """Check the set under `directory`; `only` limits pair and coverage findings to the
    migrations those files belong to (the sum and immutability always cover the whole set).

    Raises InputError for a set that cannot be read (exit 2).
    """
    migration_set = migrationset.load(directory, require_triples=False)
    migrationset.parse_all(migration_set)
    wanted = {p.name for p in only}
    findings: list[Finding] = []
    for migration in migration_set.migrations:
        if wanted and not wanted & {f.path.name for f in migration.files.values()}:
            continue
        pairs = pair_findings(migration)
        findings.extend(pairs)
        if not pairs:
            findings.extend(check_coverage(migration.up.sql, migration.down.sql, schema=view_for(migration.up.path)))
    findings.extend(sum_findings(migration_set))
    immutability = check_immutability(directory, base=base, branch=branch)
    findings.extend(immutability.findings)
    findings.sort(key=lambda f: (str(f.path), f.line, f.column, f.rule))
    return CheckResult(findings, immutability.notes)
